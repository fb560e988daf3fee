package acl

import "regexp"

// shareRegexps makes the rules that use the same regular expression share
// one compiled program. A compiled regexp takes 1 to 4 KiB and large rule
// sets repeat a few of them on most rules (docker_auth's account "/.+/"),
// so with 10,000 rules this saves megabytes, twice over while a reload
// holds the old and the new policy. A *regexp.Regexp is safe for
// concurrent use, and the same source always compiles the same way here
// (compileAnchored).
func (p *Policy) shareRegexps() {
	seen := map[string]*regexp.Regexp{}
	share := func(pt *pattern) {
		if pt.re == nil {
			return
		}
		src := pt.re.String()
		if re, ok := seen[src]; ok {
			pt.re = re
			return
		}
		seen[src] = pt.re
	}
	for i := range p.rules {
		cr := &p.rules[i]
		share(&cr.account)
		share(&cr.typ)
		share(&cr.name)
		share(&cr.service)
		for j := range cr.labels {
			share(&cr.labels[j].pat)
		}
	}
}
