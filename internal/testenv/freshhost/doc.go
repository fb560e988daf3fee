// Package freshhost boots throwaway Debian hosts for system tests: a fresh
// machine, in a container on the test machine, that `regctl init` can turn
// into a registry host for real, and that tests can look at from outside.
//
// A host is Debian trixie (standing in for Ubuntu, whose archive these
// machines cannot reach) booted with systemd-nspawn: systemd runs as PID 1,
// and dockerd, ufw and fail2ban work inside it. Two variants exist:
//
//   - Bare: systemd, dbus, iproute2, ca-certificates, procps and nothing
//     else, so `regctl init` installs docker, compose, ufw, fail2ban and
//     logrotate itself (with Options.MountRepo, from a local apt repository:
//     the host has no route out).
//   - Full: Bare plus docker.io, docker-cli, docker-compose, containerd, runc,
//     iptables, ufw, fail2ban, logrotate and python3, installed from that same
//     repository; docker runs at boot.
//
// Both are built once by scripts/freshhost-build.sh (Cache runs it; a cold
// build takes minutes, later runs reuse the result) and cached under
// $REGCTL_TEST_CACHE/freshhost, by default ~/.cache/regctl-test/freshhost,
// together with the local apt repository and three image tarballs
// (NginxImage, RegistryImage, FerretDBImage). Host.LoadImages loads them
// into a running dockerd; Host.Mirror serves them from a registry outside
// the host that its dockerd uses as its Docker Hub mirror, so that
// `docker compose up` pulls them as it would on a real host, even when
// docker is installed later (by `regctl init`).
//
// # Example
//
// `regctl init` on a bare host, offline, then a check from outside
// (a test with the integration build tag):
//
//	h := freshhost.Boot(t, freshhost.Options{
//		MountRepo: true,                      // apt-get installs from the local repository
//		Hostnames: []string{"registry.test"}, // resolves to h.IP outside
//		Binds: []freshhost.Bind{{Src: freshhost.StaticRegctl(t), Dst: "/usr/local/bin/regctl", ReadOnly: true}},
//	})
//	h.Mirror(t, h.Artifacts.Images.All()...) // compose pulls the images from outside
//	h.Sh(t, "echo "+h.IP.String()+" registry.test >>/etc/hosts") // init's DNS preflight
//	h.CopyIn(t, "/etc/regctl/regctl.yaml", []byte(`domains: {registry: registry.test}
//	images: {nginx: "regctl-test/nginx:trixie", registry: "regctl-test/registry:3.1.2"}
//	database: {backend: sqlite}
//	`), 0o600)
//	h.MustExec(t, freshhost.Cmd{
//		Args:    []string{"regctl", "init", "--config", "/etc/regctl/regctl.yaml", "--self-signed", "--password-stdin"},
//		Stdin:   strings.NewReader(password + "\n"),
//		Timeout: 15 * time.Minute,
//	})
//	tr := h.Transport() // connects from the outside namespace
//	tr.TLSClientConfig = &tls.Config{RootCAs: pool} // pool: h.ReadFile of the self-signed certificate
//	resp, err := (&http.Client{Transport: tr}).Get("https://registry.test/v2/")
//
// # Network
//
// Each host gets two network namespaces of its own and a veth pair between
// them, created before it boots: eth0 inside the host (Host.IP, by default
// 198.51.100.10/24) and, in the "outside" namespace (Host.Netns), the other
// end (Host.OuterIP, 198.51.100.1). The host's default route points at the
// outside end, which does not forward: replies reach the clients there, and
// nothing from the host reaches anything else. The test machine's own
// interfaces never see the traffic. Outside, Host.Outside runs commands
// (crane, skopeo, curl...) and Host.DialContext and Host.Transport connect
// from Go; the names in Options.Hostnames resolve to the host there. Never
// connect to Host.IP from the test process's own namespace (a plain
// net.Dial or http.Get): there the address is not local, and the
// connection would leave through the test machine's default route.
//
// Two hosts of one deployment can share one outside namespace
// (Options.ShareOutside, with another Subnet): servers both use (a store,
// a bucket, a load balancer) run there once and reach both hosts.
//
// # Lifetime
//
// Boot waits until systemd reports running (or degraded) and returns the
// host; at cleanup the host is powered off (killed after a grace period),
// and its cgroup, namespaces and temporary files are removed. If the test
// failed, the end of the host's journal and its console output are logged
// first. A test process killed outright leaves these behind; the next Boot
// (in any test process) removes every leftover whose owner is gone, by the
// name prefix "rcfh-".
//
// A host boots from a throwaway overlay over the cached rootfs. By default
// (volatile) that overlay lives in memory and dies with the host. With
// Options.Persistent it lives in a directory on disk instead, so Reboot can
// restart the same host with its files, docker images and machine ID.
//
// # Requirements
//
// Root, Linux with cgroup2 mounted (a hybrid hierarchy is fine),
// systemd-nspawn, nsenter, unshare, ip, debootstrap and dpkg-dev (run
// scripts/freshhost-deps.sh; scripts/test-deps.sh does), Go, and, for the
// one cold build, the Debian mirror this machine's apt uses and the Go
// module proxy. Missing requirements skip the test, or fail it with
// REGCTL_TEST_REQUIRE=1; REGCTL_TEST_FRESHHOST=0 skips it regardless.
package freshhost
