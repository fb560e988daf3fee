package acl

import (
	"fmt"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// ScopeBudget bounds the pattern matching work of deciding one scope, in
// steps (see below). A request carries at most MaxScopes scopes, and a
// scope may be tried against many rules, so a bound per pattern is not
// enough: the work one request costs is the work per scope, summed over
// every glob and regular expression the candidate rules make it match,
// times the number of scopes. Authorize, Explain and DecidedBy charge
// each match to the scope's budget before running it; a scope whose
// decision would need more fails closed (see Policy). The charge depends
// only on the pattern and the lengths of the values, never on timing or
// caches, so every caller reaches the same decision.
//
// A step is one regular expression instruction at one input position
// (Go's matchers visit each such pair at most once per match, so a
// program's steps for a value of n bytes are at most the sum, over its
// instructions, of the positions at which the instruction can run), one
// byte of a glob compared at one name position, or one candidate rule
// tried (visitSteps). Compiling a regular expression built from ${name}
// for this scope costs compileBaseSteps plus compileInstSteps per
// instruction. These take roughly equal time, so a request's whole
// decision costs at most MaxScopes * ScopeBudget steps' worth of CPU,
// whatever the rule set: BenchmarkAuthorizeWorstCase measures it.
const ScopeBudget = 1 << 14

// visitSteps is the charge for trying one candidate rule, whatever its
// patterns then cost: a scope may try about ScopeBudget rules. The index
// keeps most scopes' candidates to a handful.
const visitSteps = 1

// checkLength is the value length compilePattern checks a pattern's cost
// against: the longest repository name (accounts and label values are no
// longer). A pattern that cannot match a value this long within
// ScopeBudget is refused, so that every rule can be evaluated on its own.
const checkLength = MaxNameLength

// Compiling a regular expression (parsing, checking and building it twice,
// as compileAnchored does) costs about as much as this many matching
// steps, plus compileInstSteps per instruction of the program.
const (
	compileBaseSteps = 2048
	compileInstSteps = 128
)

// infPos marks a window that is open to the right: the instruction can
// run at every position from its start on.
const infPos = 0xFFFF

// regexCost is what a regular expression's matching may cost: for each
// reachable instruction of its program, the window of input positions
// (byte offsets) at which a match can run it.
type regexCost struct {
	insts int
	win   []uint32 // lo | hi<<16, hi == infPos: unbounded
}

// steps returns an upper bound of the steps matching a value of n bytes
// takes: one per instruction for setting up, plus one per instruction
// per position in its window up to n.
func (c regexCost) steps(n int) int {
	total := c.insts
	for _, w := range c.win {
		lo, hi := int(w&0xFFFF), int(w>>16)
		if lo > n {
			continue
		}
		if hi == infPos || hi > n {
			hi = n
		}
		total += hi - lo + 1
	}
	return total
}

// compileSteps is the charge for compiling a program of n instructions.
func compileSteps(n int) int { return compileBaseSteps + compileInstSteps*n }

// window is a closed interval of input positions; hi may be infPos.
type posWindow struct{ lo, hi int }

var noWindow = posWindow{lo: infPos, hi: -1}

func (w posWindow) empty() bool { return w.lo > w.hi }

func (w posWindow) hull(o posWindow) posWindow {
	switch {
	case w.empty():
		return o
	case o.empty():
		return w
	}
	return posWindow{min(w.lo, o.lo), max(w.hi, o.hi)}
}

// advance moves a window past an instruction that consumes 1 to width
// bytes.
func (w posWindow) advance(width int) posWindow {
	if w.empty() {
		return w
	}
	w.lo = min(w.lo+1, infPos)
	if w.hi != infPos {
		w.hi = min(w.hi+width, infPos)
	}
	return w
}

// analyzeProgram computes the position windows of prog's instructions.
// It follows the program's control flow from its start: a rune
// instruction moves the window on by 1 to 4 bytes (1 when it matches only
// ASCII), '^' (begin of text) narrows it to position 0, and a cycle that
// consumes input makes the windows of its instructions unbounded. The
// windows are over-approximations, so the steps they give are an upper
// bound of the work of any of Go's matchers (onepass, backtracking and
// NFA), which never run one instruction twice at one position.
func analyzeProgram(prog *syntax.Prog) regexCost {
	n := len(prog.Inst)
	// succ returns pc's successors: up to two.
	succ := func(pc int) ([2]int, int) {
		i := &prog.Inst[pc]
		switch i.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			return [2]int{int(i.Out), int(i.Arg)}, 2
		case syntax.InstMatch, syntax.InstFail:
			return [2]int{}, 0
		}
		return [2]int{int(i.Out)}, 1
	}

	// Tarjan's algorithm: comps lists the strongly connected components
	// in reverse topological order, as consecutive runs of order.
	index := make([]int32, n)
	low := make([]int32, n)
	comp := make([]int32, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i], comp[i] = -1, -1
	}
	stack := make([]int, 0, n)
	order := make([]int, 0, n)
	var comps []int // end of each component in order
	next := int32(0)
	var visit func(pc int)
	visit = func(pc int) {
		index[pc], low[pc] = next, next
		next++
		stack = append(stack, pc)
		onStack[pc] = true
		ss, k := succ(pc)
		for _, s := range ss[:k] {
			if index[s] < 0 {
				visit(s)
				low[pc] = min(low[pc], low[s])
			} else if onStack[s] {
				low[pc] = min(low[pc], index[s])
			}
		}
		if low[pc] == index[pc] {
			for {
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[top] = false
				comp[top] = int32(len(comps))
				order = append(order, top)
				if top == pc {
					break
				}
			}
			comps = append(comps, len(order))
		}
	}
	visit(prog.Start)

	in := make([]posWindow, n)
	for i := range in {
		in[i] = noWindow
	}
	in[prog.Start] = posWindow{0, 0}
	win := make([]posWindow, n)
	for k := len(comps) - 1; k >= 0; k-- {
		start := 0
		if k > 0 {
			start = comps[k-1]
		}
		c := order[start:comps[k]]
		entry := noWindow
		cyclic, consumes := len(c) > 1, false
		for _, pc := range c {
			entry = entry.hull(in[pc])
			ss, m := succ(pc)
			for _, s := range ss[:m] {
				cyclic = cyclic || s == pc
			}
			consumes = consumes || runeWidth(&prog.Inst[pc]) > 0
		}
		if cyclic && consumes && !entry.empty() {
			entry.hi = infPos
		}
		for _, pc := range c {
			win[pc] = in[pc]
			if cyclic {
				win[pc] = entry
			}
			out := transfer(&prog.Inst[pc], win[pc])
			ss, m := succ(pc)
			for _, s := range ss[:m] {
				if comp[s] != int32(k) {
					in[s] = in[s].hull(out)
				}
			}
		}
	}

	cost := regexCost{insts: n}
	for _, pc := range order {
		if w := win[pc]; !w.empty() {
			cost.win = append(cost.win, uint32(w.lo)|uint32(w.hi)<<16)
		}
	}
	return cost
}

// transfer returns the positions at which an instruction that runs at
// the positions w hands over to its successors.
func transfer(i *syntax.Inst, w posWindow) posWindow {
	if width := runeWidth(i); width > 0 {
		return w.advance(width)
	}
	if i.Op == syntax.InstEmptyWidth && syntax.EmptyOp(i.Arg)&syntax.EmptyBeginText != 0 {
		if w.empty() || w.lo > 0 {
			return noWindow
		}
		return posWindow{0, 0}
	}
	return w
}

// runeWidth returns how many bytes a rune instruction may consume at
// most (0 for other instructions).
func runeWidth(i *syntax.Inst) int {
	switch i.Op {
	case syntax.InstRune1:
		return max(utf8.RuneLen(i.Rune[0]), 1)
	case syntax.InstRune:
		if len(i.Rune) == 0 {
			return 1
		}
		hi := i.Rune[len(i.Rune)-1]
		if syntax.Flags(i.Arg)&syntax.FoldCase != 0 {
			for _, r := range i.Rune {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					hi = max(hi, f)
				}
			}
		}
		if hi < utf8.RuneSelf {
			return 1
		}
		return utf8.UTFMax
	case syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		return utf8.UTFMax
	}
	return 0
}

// globCost is what matching a glob with path.Match may cost: base steps
// once, plus perPos steps per name position. path.Match tries each chunk
// that follows a '*' at every position of the name up to the next '/' (it
// never backtracks across stars), and comparing a chunk costs at most its
// length.
type globCost struct{ base, perPos int }

func newGlobCost(g string) globCost {
	c := globCost{base: 2 * len(g)}
	for g != "" {
		var star bool
		var chunk string
		star, chunk, g = scanGlobChunk(g)
		if star {
			c.perPos += max(len(chunk), 1)
		}
	}
	return c
}

// steps returns an upper bound of the steps matching a name of n bytes
// takes.
func (c globCost) steps(n int) int { return c.base + c.perPos*(n+1) }

// scanGlobChunk splits off the next chunk of a glob as path.Match does:
// leading stars, then text up to the next star outside brackets.
func scanGlobChunk(g string) (star bool, chunk, rest string) {
	for g != "" && g[0] == '*' {
		g, star = g[1:], true
	}
	inRange := false
	i := 0
scan:
	for ; i < len(g); i++ {
		switch g[i] {
		case '\\':
			if i+1 < len(g) {
				i++
			}
		case '[':
			inRange = true
		case ']':
			inRange = false
		case '*':
			if !inRange {
				break scan
			}
		}
	}
	return star, g[:i], g[i:]
}

// errTooCostly reports a pattern whose matching alone could exceed
// ScopeBudget on a value of checkLength bytes.
func errTooCostly(what string, steps int) error {
	return fmt.Errorf("%s may take %d steps to match a %d-character value, more than the %d that deciding one scope of a request (of up to %d) may take; "+
		"shorten it, give it a literal prefix, or avoid counted repetition {n,m} of optional or large groups",
		what, steps, checkLength, ScopeBudget, MaxScopes)
}
