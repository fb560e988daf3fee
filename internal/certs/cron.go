package certs

import (
	"fmt"
	"hash/fnv"
)

// CronFile returns an /etc/cron.d file that runs `BIN certs renew --root
// ROOT -q` twice a day, 12 hours apart, as root. The minute and hour are
// derived from seed (the host name, say), so hosts do not all ask the CA at
// the same moment; renew adds its own random delay on top. With -q a run
// prints nothing unless it renewed or failed, so cron mails only then.
func CronFile(bin, root, seed string) []byte {
	h := fnv.New32a()
	_, _ = h.Write([]byte(seed))
	n := h.Sum32()
	minute, hour := n%60, (n/60)%12
	return fmt.Appendf(nil, `# Installed by regctl: renew the TLS certificates nginx serves.
# "regctl certs renew" decides per certificate whether it is due (ACME ARI,
# else a third of the lifetime left) and reloads nginx only after a renewal.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
%d %d,%d * * * root %s certs renew --root %s -q
`, minute, hour, hour+12, bin, root)
}
