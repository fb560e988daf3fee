package acl

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// MaxExpansions bounds how many strings one templated pattern may expand
// to for one request (the product of the subject's value counts over the
// distinct ${labels:KEY} variables it uses). A pattern that would expand
// to more is undecided (see outcome): unless another condition of its rule
// fails, the search stops there and the rules allow the scope nothing.
const MaxExpansions = 256

// MaxPatternLength is the longest rule pattern Validate accepts.
const MaxPatternLength = 4096

// regexCacheMax bounds the per-policy cache of regular expressions built
// from templated patterns. When it fills, it is emptied.
const regexCacheMax = 1024

// segKind says what a piece of a templated pattern is.
type segKind uint8

const (
	segLiteral segKind = iota
	segAccount
	segName
	segType
	segService
	segLabel
)

// segment is a piece of a templated pattern: literal text or a variable.
type segment struct {
	kind  segKind
	text  string // literal text, or the label key for segLabel
	label int    // index into pattern.labels for segLabel
}

// patKind is how a compiled pattern matches.
type patKind uint8

const (
	patLiteral   patKind = iota // exact string
	patGlob                     // path.Match
	patRegex                    // anchored regexp
	patTmplGlob                 // glob with variables
	patTmplRegex                // regexp with variables
)

// pattern is one compiled Match field; an absent field has none (a nil
// *pattern matches anything). Patterns are immutable once compiled but for
// re, so a policy keeps one per distinct source and its rules share it
// (see interner).
type pattern struct {
	kind patKind
	src  string    // the pattern as written
	tmpl *template // templated kinds
	glob globCost  // patGlob: what matching it costs
	// re is a patRegex's program, built on first use (see program): a
	// compiled regexp costs 1 to 4 KiB, more when anchoring makes it
	// one-pass, and many of a large rule set's never run between two
	// reloads, since the candidate index skips rules that cannot match.
	re atomic.Pointer[regexProgram]
}

// regexProgram is a compiled regular expression and what matching it
// costs.
type regexProgram struct {
	re   *regexp.Regexp
	cost regexCost
}

// template is a templated pattern split into literal text and variables.
type template struct {
	segs   []segment
	labels []string // distinct label keys used, in order of first use
	// scoped: a regex using ${name}, compiled anew for every scope name
	// and charged for it. size1 is the size of its program with every
	// value one byte long, and growth how many instructions each further
	// byte of the longest value may add (see predictSize).
	scoped        bool
	size1, growth int
}

// predictSize bounds the size of a scoped template's program when the
// longest substituted value is n bytes long: a quoted value is a literal,
// which compiles to one instruction per rune at each place it ends up.
func (t *template) predictSize(n int) int {
	return t.size1 + t.growth*max(n-1, 0)
}

var errUnterminatedVar = errors.New("unterminated variable (missing '}')")

const allowedVarsText = "${account}, ${name}, ${type}, ${service}, ${labels:KEY}"

// parseVars splits a pattern body into literal text and variables.
func parseVars(body string) ([]segment, []string, error) {
	var segs []segment
	var labels []string
	for body != "" {
		i := strings.Index(body, "${")
		if i < 0 {
			segs = append(segs, segment{kind: segLiteral, text: body})
			break
		}
		if i > 0 {
			segs = append(segs, segment{kind: segLiteral, text: body[:i]})
		}
		j := strings.IndexByte(body[i+2:], '}')
		if j < 0 {
			return nil, nil, errUnterminatedVar
		}
		name := body[i+2 : i+2+j]
		body = body[i+3+j:]
		var seg segment
		switch name {
		case "account":
			seg.kind = segAccount
		case "name":
			seg.kind = segName
		case "type":
			seg.kind = segType
		case "service":
			seg.kind = segService
		default:
			key, ok := strings.CutPrefix(name, "labels:")
			switch {
			case !ok:
				return nil, nil, fmt.Errorf("unknown variable ${%s} (allowed: %s)", clip(name), allowedVarsText)
			case key == "":
				return nil, nil, fmt.Errorf("variable ${labels:} names no label (allowed: %s)", allowedVarsText)
			case strings.ContainsAny(key, "${"):
				return nil, nil, fmt.Errorf("variable ${%s}: label name must not contain '$' or '{'", clip(name))
			}
			seg.kind, seg.text = segLabel, key
			seg.label = -1
			for k, l := range labels {
				if l == key {
					seg.label = k
				}
			}
			if seg.label < 0 {
				seg.label = len(labels)
				labels = append(labels, key)
			}
		}
		segs = append(segs, seg)
	}
	return segs, labels, nil
}

// isRegexPattern reports whether a pattern is written /.../ (as in
// docker_auth, "//" and "/" are globs).
func isRegexPattern(p string) bool {
	return len(p) > 2 && p[0] == '/' && p[len(p)-1] == '/'
}

// compilePattern compiles one Match field. Its errors do not name the
// field or rule; the caller adds that.
func compilePattern(src string) (*pattern, error) {
	if len(src) > MaxPatternLength {
		return nil, fmt.Errorf("pattern is %d characters long (max %d)", len(src), MaxPatternLength)
	}
	p := &pattern{src: src}
	regex := isRegexPattern(src)
	body := src
	if regex {
		body = src[1 : len(src)-1]
	}
	segs, labels, err := parseVars(body)
	if err != nil {
		return nil, err
	}
	templated := false
	for _, s := range segs {
		if s.kind != segLiteral {
			templated = true
		}
	}

	switch {
	case regex && !templated:
		prog, err := validateAnchored(p.anchored())
		if err != nil {
			return nil, fmt.Errorf("invalid regular expression %s: %w", clip(src), err)
		}
		c := analyzeProgram(prog)
		if n := c.steps(checkLength); n > ScopeBudget {
			return nil, errTooCostly(fmt.Sprintf("regular expression %s (%d instructions)", clip(src), len(prog.Inst)), n)
		}
		p.kind = patRegex
	case regex:
		// Check the shape with every variable replaced by a literal
		// group, which is what substitution produces.
		prog, err := validateAnchored(templateSource(segs, "x"))
		if err != nil {
			return nil, fmt.Errorf("invalid regular expression %s: %w", clip(src), err)
		}
		t := &template{segs: segs, labels: labels}
		n := analyzeProgram(prog).steps(checkLength)
		for _, s := range segs {
			t.scoped = t.scoped || s.kind == segName
		}
		if t.scoped {
			if t.size1, t.growth, err = templateGrowth(segs); err != nil {
				return nil, fmt.Errorf("invalid regular expression %s: %w", clip(src), err)
			}
			n += compileSteps(t.size1)
		}
		if n > ScopeBudget {
			return nil, errTooCostly(fmt.Sprintf("regular expression %s (with one-character values)", clip(src)), n)
		}
		p.kind, p.tmpl = patTmplRegex, t
	case !templated:
		if !hasGlobMeta(src) {
			p.kind = patLiteral
			break
		}
		if _, err := path.Match(src, ""); err != nil {
			return nil, fmt.Errorf("malformed glob %q: %w", clip(src), err)
		}
		p.glob = newGlobCost(src)
		if n := p.glob.steps(checkLength); n > ScopeBudget {
			return nil, errTooCostly(fmt.Sprintf("glob %q", clip(src)), n)
		}
		p.kind = patGlob
	default:
		var b strings.Builder
		for _, s := range segs {
			if s.kind == segLiteral {
				b.WriteString(s.text)
			} else {
				b.WriteString("x")
			}
		}
		if _, err := path.Match(b.String(), ""); err != nil {
			return nil, fmt.Errorf("malformed glob %q: %w", clip(src), err)
		}
		if n := newGlobCost(b.String()).steps(checkLength); n > ScopeBudget {
			return nil, errTooCostly(fmt.Sprintf("glob %q (with one-character values)", clip(src)), n)
		}
		p.kind, p.tmpl = patTmplGlob, &template{segs: segs, labels: labels}
	}
	return p, nil
}

// anchored returns a patRegex's source as the anchored expression
// "^(?:...)$" it stands for.
func (p *pattern) anchored() string {
	return "^(?:" + p.src[1:len(p.src)-1] + ")$"
}

// templateSource builds the anchored source of a templated regex with
// every variable replaced by the literal group (?:v).
func templateSource(segs []segment, v string) string {
	return templateSourceFunc(segs, func(int) string { return v })
}

// templateSourceFunc is templateSource with value(i) in place of the
// variable that is segs[i].
func templateSourceFunc(segs []segment, value func(i int) string) string {
	var b strings.Builder
	b.WriteString("^(?:")
	for i, s := range segs {
		if s.kind == segLiteral {
			b.WriteString(s.text)
		} else {
			b.WriteString("(?:" + value(i) + ")")
		}
	}
	b.WriteString(")$")
	return b.String()
}

// templateGrowth measures a templated regex's program with every value
// one and two runes long. Each variable gets runes of its own (from a
// private use plane), so that no two values merge or share a prefix
// with each other or with the pattern's text, which would hide growth.
func templateGrowth(segs []segment) (size1, growth int, err error) {
	size := func(n int) (int, error) {
		prog, err := validateAnchored(templateSourceFunc(segs, func(i int) string {
			return strings.Repeat(string(rune(0xF0000+i)), n)
		}))
		if err != nil {
			return 0, err
		}
		return len(prog.Inst), nil
	}
	if size1, err = size(1); err != nil {
		return 0, 0, err
	}
	size2, err := size(2)
	if err != nil {
		return 0, 0, err
	}
	return size1, size2 - size1, nil
}

// program returns a patRegex's program, compiling it on first use.
func (p *pattern) program() *regexProgram {
	if rp := p.re.Load(); rp != nil {
		return rp
	}
	return p.compileRegexp()
}

// compileRegexp is program's slow path. Goroutines that race on first use
// may each compile the program, but all of them then use the one that was
// stored first.
func (p *pattern) compileRegexp() *regexProgram {
	// compilePattern validated the expression with validateAnchored, which
	// parses and compiles it exactly as regexp.Compile does, so this
	// cannot fail.
	rp, err := compileAnchored(p.anchored())
	if err != nil {
		panic(fmt.Sprintf("acl: validated regular expression %s does not compile: %v", p.src, err))
	}
	if !p.re.CompareAndSwap(nil, rp) {
		rp = p.re.Load()
	}
	return rp
}

// prefix returns literal text every value the pattern matches starts with
// ("" when there is none or it is unknown). Compile indexes rules by the
// prefix of their name pattern.
func (p *pattern) prefix() string {
	switch p.kind {
	case patLiteral:
		return p.src
	case patGlob:
		return globPrefix(p.src)
	case patRegex:
		return regexLiteralPrefix(p.src[1 : len(p.src)-1])
	case patTmplGlob:
		if s := p.tmpl.segs[0]; s.kind == segLiteral {
			return globPrefix(s.text)
		}
	}
	return ""
}

// MaxRegexInstructions bounds the compiled size of a regular expression
// (in regexp/syntax instructions), and so the memory and the time
// compiling it takes; ScopeBudget bounds the time matching takes. An
// expansion of a templated regex that grows past the bound is undecided
// (see outcome): unless another expansion matches, the rule fails
// closed.
const MaxRegexInstructions = 4096

// compileAnchored compiles "^(?:inner)$" after validateAnchored accepts
// it.
func compileAnchored(wrapped string) (*regexProgram, error) {
	prog, err := validateAnchored(wrapped)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(wrapped)
	if err != nil {
		return nil, err
	}
	return &regexProgram{re: re, cost: analyzeProgram(prog)}, nil
}

// validateAnchored checks "^(?:inner)$": that inner parses on its own, so
// that an unbalanced inner ")" cannot break the anchoring, that the whole
// parses and compiles, and that the program stays within
// MaxRegexInstructions. These are the steps of regexp.Compile, which then
// cannot fail. It returns the program.
func validateAnchored(wrapped string) (*syntax.Prog, error) {
	inner := wrapped[len("^(?:") : len(wrapped)-len(")$")]
	if _, err := syntax.Parse(inner, syntax.Perl); err != nil {
		return nil, err
	}
	re, err := syntax.Parse(wrapped, syntax.Perl)
	if err != nil {
		return nil, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	if n := len(prog.Inst); n > MaxRegexInstructions {
		return nil, fmt.Errorf("%w: compiles to %d instructions (max %d)", errTooComplex, n, MaxRegexInstructions)
	}
	return prog, nil
}

// errTooComplex reports a regular expression whose program exceeds
// MaxRegexInstructions.
var errTooComplex = errors.New("too complex")

const globMeta = `*?[\`

func hasGlobMeta(s string) bool { return strings.ContainsAny(s, globMeta) }

// globPrefix is the literal text before a glob's first metacharacter.
func globPrefix(g string) string {
	if i := strings.IndexAny(g, globMeta); i >= 0 {
		return g[:i]
	}
	return g
}

// escapeGlob escapes path.Match metacharacters with '\'.
func escapeGlob(s string) string {
	if !hasGlobMeta(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(globMeta, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// regexLiteralPrefix returns literal text every whole-value match of the
// regular expression body must start with ("" when unsure).
func regexLiteralPrefix(body string) string {
	re, err := syntax.Parse(body, syntax.Perl)
	if err != nil {
		return ""
	}
	return literalPrefix(re)
}

func literalPrefix(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		return plainRunes(re)
	case syntax.OpCapture:
		return literalPrefix(re.Sub[0])
	case syntax.OpConcat:
		var b strings.Builder
		for _, sub := range re.Sub {
			if sub.Op == syntax.OpLiteral {
				lit := plainRunes(sub)
				b.WriteString(lit)
				if len(lit) == utf8RunesLen(sub.Rune) {
					continue
				}
				break
			}
			b.WriteString(literalPrefix(sub))
			break
		}
		return b.String()
	}
	return ""
}

// plainRunes returns the case-sensitive literal text of an OpLiteral up to
// the first U+FFFD (which would also match invalid UTF-8 bytes).
func plainRunes(re *syntax.Regexp) string {
	if re.Flags&syntax.FoldCase != 0 {
		return ""
	}
	var b strings.Builder
	for _, r := range re.Rune {
		if r == utf8.RuneError {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

func utf8RunesLen(rs []rune) int {
	n := 0
	for _, r := range rs {
		n += utf8.RuneLen(r)
	}
	return n
}

// evalCtx is what variables expand to for one scope, and what deciding
// the scope has spent so far (see ScopeBudget).
// It copies what it needs from the Subject rather than pointing to it, so
// that the caller's Subject can stay on the stack.
type evalCtx struct {
	account string
	labels  map[string][]string
	ip      netip.Addr
	service string
	scope   *Scope
	cache   *regexCache

	budget int  // steps left; newEvalCtx starts it at ScopeBudget
	over   bool // a charge needed more than was left: the rules allow nothing
	// undecided: the search stopped at an undecided rule (see outcome):
	// the rules allow nothing.
	undecided bool
	// free: Explain is looking at a rule the index skips, which cannot
	// match; its matches are neither charged nor remembered, so that
	// Explain spends exactly what Authorize spends.
	free bool
	memo matchMemo
}

func newEvalCtx(sub *Subject, service string, sc *Scope, cache *regexCache) evalCtx {
	return evalCtx{account: sub.Account, labels: sub.Labels, ip: sub.IP, service: service, scope: sc, cache: cache, budget: ScopeBudget}
}

// charge takes steps from the scope's budget, and reports whether they
// were there. Once a charge fails every later one fails too.
func (ec *evalCtx) charge(steps int) bool {
	switch {
	case ec.free:
		return true
	case ec.over || steps > ec.budget:
		ec.over = true
		return false
	}
	ec.budget -= steps
	return true
}

// outcome is the result of matching a value, a condition or a rule.
type outcome uint8

const (
	noMatch outcome = iota
	matched
	// undecided: a limit kept regctl from telling whether it matches:
	// more than MaxExpansions combinations of label values, or an
	// expansion that compiles to more than MaxRegexInstructions. A rule
	// with an undecided condition and no failing one is undecided, and
	// stops the search: the rules allow the scope nothing, which is never
	// more than deciding without the limit would allow.
	undecided
)

// matchMemo remembers, for one scope, how a value matched a pattern, so
// that a pattern many rules share (interned, see interner) is matched and
// charged once per value.
type matchMemo struct {
	few  [8]memoEntry
	n    int
	more map[memoKey]outcome
}

type memoKey struct {
	p *pattern
	v string
}

type memoEntry struct {
	memoKey
	o outcome
}

func (m *matchMemo) get(p *pattern, v string) (o outcome, found bool) {
	for i := range m.few[:m.n] {
		if e := &m.few[i]; e.p == p && e.v == v {
			return e.o, true
		}
	}
	o, found = m.more[memoKey{p, v}]
	return o, found
}

func (m *matchMemo) put(p *pattern, v string, o outcome) {
	if m.n < len(m.few) {
		m.few[m.n] = memoEntry{memoKey{p, v}, o}
		m.n++
		return
	}
	if m.more == nil {
		m.more = map[memoKey]outcome{}
	}
	m.more[memoKey{p, v}] = o
}

func (ec *evalCtx) value(k segKind) string {
	switch k {
	case segAccount:
		return ec.account
	case segName:
		return ec.scope.Name
	case segType:
		return ec.scope.Type
	case segService:
		return ec.service
	}
	return ""
}

// expandStatus says why an expansion stopped early.
type expandStatus uint8

const (
	expandDone     expandStatus = iota
	expandNoValues              // the subject has no values for a label
	expandTooMany               // more than MaxExpansions combinations
)

// expand calls fn with each expansion of a templated pattern, and the
// length of the longest value substituted in it, until fn returns true.
// For a glob the expansion is the glob itself; for a regex it is the
// anchored source "^(?:...)$". It reports whether fn returned true, and
// otherwise why it stopped; key names the label without values. A label
// without values is reported before too many combinations: then no
// expansion exists, and the pattern surely does not match.
func (p *pattern) expand(ec *evalCtx, fn func(s string, longest int) bool) (found bool, st expandStatus, key string) {
	var vbuf [4][]string
	vals := vbuf[:0]
	total := 1
	for _, k := range p.tmpl.labels {
		if len(ec.labels[k]) == 0 {
			return false, expandNoValues, k
		}
	}
	for _, k := range p.tmpl.labels {
		v := ec.labels[k]
		if len(v) > MaxExpansions/total {
			return false, expandTooMany, ""
		}
		total *= len(v)
		vals = append(vals, v)
	}
	var ibuf [4]int
	idx := ibuf[:0]
	for range vals {
		idx = append(idx, 0)
	}
	for {
		if fn(p.build(ec, vals, idx)) {
			return true, expandDone, ""
		}
		i := len(idx) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(vals[i]) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return false, expandDone, ""
		}
	}
}

// build substitutes one combination of label values, and returns the
// length of the longest value it substituted. In a glob, label values go
// in raw (they are globs themselves) and the other values with their
// metacharacters escaped. In a regex every value goes in quoted with
// regexp.QuoteMeta and wrapped in a non-capturing group.
func (p *pattern) build(ec *evalCtx, vals [][]string, idx []int) (string, int) {
	if p.kind == patTmplGlob && len(p.tmpl.segs) == 1 {
		s := p.tmpl.segs[0]
		if s.kind == segLabel {
			v := vals[s.label][idx[s.label]]
			return v, len(v)
		}
		v := ec.value(s.kind)
		return escapeGlob(v), len(v)
	}
	longest := 0
	var b strings.Builder
	b.Grow(len(p.src) + 32)
	regex := p.kind == patTmplRegex
	if regex {
		b.WriteString("^(?:")
	}
	for _, s := range p.tmpl.segs {
		var v string
		switch s.kind {
		case segLiteral:
			b.WriteString(s.text)
			continue
		case segLabel:
			v = vals[s.label][idx[s.label]]
		default:
			v = ec.value(s.kind)
		}
		longest = max(longest, len(v))
		switch {
		case regex:
			b.WriteString("(?:")
			b.WriteString(regexp.QuoteMeta(v))
			b.WriteByte(')')
		case s.kind == segLabel:
			b.WriteString(v)
		default:
			b.WriteString(escapeGlob(v))
		}
	}
	if regex {
		b.WriteString(")$")
	}
	return b.String(), longest
}

// fieldTrace collects what matching one value against a pattern did, for
// Explain.
type fieldTrace struct {
	tried  []string // expansions tried, in display form
	bad    []string // expansions that were not valid patterns
	status expandStatus
	key    string
	prefix string // not expanded: the value lacks this literal prefix
}

// matchValue matches v against the pattern, charging the match to ec's
// budget; a match the budget cannot pay for is noMatch and sets ec.over.
// ft is nil on the hot path.
func (p *pattern) matchValue(v string, ec *evalCtx, ft *fieldTrace) outcome {
	if p.kind == patLiteral {
		if v == p.src {
			return matched
		}
		return noMatch
	}
	if ec.free {
		return p.match(v, ec, ft)
	}
	if o, found := ec.memo.get(p, v); found {
		if ft != nil {
			// Matched and charged before: match again for the
			// explanation only.
			ec.free = true
			p.match(v, ec, ft)
			ec.free = false
		}
		return o
	}
	o := p.match(v, ec, ft)
	if !ec.over {
		ec.memo.put(p, v, o)
	}
	return o
}

// match is matchValue without the memo.
func (p *pattern) match(v string, ec *evalCtx, ft *fieldTrace) outcome {
	yes := func(ok bool) outcome {
		if ok {
			return matched
		}
		return noMatch
	}
	switch p.kind {
	case patGlob:
		if !ec.charge(p.glob.steps(len(v))) {
			return noMatch
		}
		ok, _ := path.Match(p.src, v)
		return yes(ok)
	case patRegex:
		rp := p.program()
		return yes(ec.charge(rp.cost.steps(len(v))) && rp.re.MatchString(v))
	}
	if pf := p.prefix(); !strings.HasPrefix(v, pf) {
		// Every expansion starts with pf (the candidate index relies on
		// it): no need to expand, and no limit to meet.
		if ft != nil {
			ft.status, ft.prefix = expandDone, pf
		}
		return noMatch
	}
	regex := p.kind == patTmplRegex
	tooComplex := false
	found, st, key := p.expand(ec, func(s string, longest int) bool {
		var ok bool
		var err error
		if regex {
			// A scoped expansion is new for every scope name, so it is
			// charged for compiling, whether or not the cache holds it.
			if p.tmpl.scoped && !ec.charge(compileSteps(min(p.tmpl.predictSize(longest), MaxRegexInstructions))) {
				return true
			}
			var rp *regexProgram
			if rp, err = ec.cache.get(s); err == nil {
				if !ec.charge(rp.cost.steps(len(v))) {
					return true
				}
				ok = rp.re.MatchString(v)
			} else if errors.Is(err, errTooComplex) {
				tooComplex = true
			}
		} else {
			if !ec.charge(newGlobCost(s).steps(len(v))) {
				return true
			}
			ok, err = path.Match(s, v)
		}
		if ft != nil {
			d := p.display(s)
			ft.tried = append(ft.tried, d)
			if err != nil {
				ft.bad = append(ft.bad, fmt.Sprintf("%s: %v", d, err))
			}
		}
		return ok
	})
	if ft != nil {
		ft.status, ft.key = st, key
	}
	switch {
	case ec.over:
		return noMatch
	case found:
		return matched
	case st == expandTooMany || tooComplex:
		return undecided
	}
	return noMatch
}

// display turns an expansion into the form a user writes.
func (p *pattern) display(s string) string {
	if p.kind == patTmplRegex {
		return "/" + s[len("^(?:"):len(s)-len(")$")] + "/"
	}
	return s
}

// expansions lists every expansion of a templated pattern, for Explain.
func (p *pattern) expansions(ec *evalCtx) ([]string, expandStatus, string) {
	var out []string
	_, st, key := p.expand(ec, func(s string, _ int) bool {
		out = append(out, p.display(s))
		return false
	})
	return out, st, key
}

// regexCache holds regular expressions built from templated patterns so
// repeated requests do not recompile them. Failed compilations are cached
// too. It is safe for concurrent use and holds about regexCacheMax entries
// at most: when full it is emptied.
type regexCache struct {
	m sync.Map // string -> *regexEntry
	n atomic.Int64
}

type regexEntry struct {
	rp  *regexProgram
	err error
}

func (c *regexCache) get(src string) (*regexProgram, error) {
	if v, ok := c.m.Load(src); ok {
		e := v.(*regexEntry)
		return e.rp, e.err
	}
	e := &regexEntry{}
	e.rp, e.err = compileAnchored(src)
	if len(src) <= 2*MaxPatternLength {
		if c.n.Add(1) > regexCacheMax {
			c.m.Clear()
			c.n.Store(1)
		}
		c.m.Store(src, e)
	}
	return e.rp, e.err
}
