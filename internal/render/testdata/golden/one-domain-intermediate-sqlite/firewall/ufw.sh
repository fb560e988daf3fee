#!/bin/sh
# Rendered by `regctl render`; applied by `regctl init`. Safe to re-run.
#
# SSH is allowed first, so that enabling the firewall cannot lock you out.
# Docker-published ports bypass ufw: that is why only nginx publishes any.
# Set UFW="ufw --dry-run" to print the rules instead of applying them.
set -eu
UFW=${UFW:-ufw}
$UFW allow 22/tcp comment 'regctl ssh'
$UFW allow 80/tcp comment 'regctl http'
$UFW allow 443/tcp comment 'regctl https'
$UFW default deny incoming
$UFW default allow outgoing
$UFW --force enable
