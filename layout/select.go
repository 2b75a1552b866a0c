package layout

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ckptdev/ckpt/internal/textsafe"
)

// Category is a group of file roles that a partial pull can ask for by
// name: weights, config, tokenizer or resume.
type Category string

// The categories, and the roles each one selects. RoleOther (README.md,
// runs/ logs, ...) is in none: only a selection without categories
// selects it.
const (
	// CategoryWeights: RoleWeights and RoleWeightsIndex (a sharded model
	// cannot load its shards without the index). PEFT adapter weights
	// (adapter_model.*) are RoleWeights.
	CategoryWeights Category = "weights"
	// CategoryConfig: RoleConfig (config.json, adapter_config.json, the
	// processor configurations) and RoleGenerationConfig
	// (generation_config.json).
	CategoryConfig Category = "config"
	// CategoryTokenizer: RoleTokenizer.
	CategoryTokenizer Category = "tokenizer"
	// CategoryResume: RoleResumeState and RoleTrainerState: what resuming
	// training needs besides the model (Trainer reads trainer_state.json
	// when it resumes).
	CategoryResume Category = "resume"
)

// Categories returns every category, in their documented order.
func Categories() []Category {
	return []Category{CategoryWeights, CategoryConfig, CategoryTokenizer, CategoryResume}
}

var categoryRoles = map[Category][]Role{
	CategoryWeights:   {RoleWeights, RoleWeightsIndex},
	CategoryConfig:    {RoleConfig, RoleGenerationConfig},
	CategoryTokenizer: {RoleTokenizer},
	CategoryResume:    {RoleResumeState, RoleTrainerState},
}

// ParseCategory returns the category named s.
func ParseCategory(s string) (Category, error) {
	c := Category(s)
	if _, ok := categoryRoles[c]; !ok {
		return "", fmt.Errorf("unknown file category %s (want weights, config, tokenizer or resume)", textsafe.Name(s))
	}
	return c, nil
}

// Roles returns the roles c selects, nil for an unknown category.
func (c Category) Roles() []Role { return slices.Clone(categoryRoles[c]) }

// CategoryOf returns the category of files of role r; ok is false for
// RoleOther and unknown roles.
func CategoryOf(r Role) (c Category, ok bool) {
	for _, c := range Categories() {
		if slices.Contains(categoryRoles[c], r) {
			return c, true
		}
	}
	return "", false
}

// Selection picks files of a folder by path and role, for a partial pull.
// A file is selected when all of these hold:
//   - Only is empty, or the file's role is in one of its categories;
//   - Include is empty, or the path matches one of its patterns;
//   - the path matches none of the Exclude patterns.
//
// The zero Selection selects every file. Patterns follow `hf download
// --include/--exclude` exactly (see MatchPattern). How a selection combines
// with the files a pull writes by default (the runnable ones) is the
// caller's choice.
type Selection struct {
	Include []string
	Exclude []string
	Only    []Category
}

// All reports whether s selects every file: no categories and no patterns.
func (s Selection) All() bool {
	return len(s.Include) == 0 && len(s.Exclude) == 0 && len(s.Only) == 0
}

// Match reports whether s selects the file at path (slash-separated,
// relative to the folder root) of the given role.
func (s Selection) Match(path string, role Role) bool {
	if len(s.Only) > 0 {
		c, ok := CategoryOf(role)
		if !ok || !slices.Contains(s.Only, c) {
			return false
		}
	}
	if len(s.Include) > 0 && !slices.ContainsFunc(s.Include, func(p string) bool { return MatchPattern(p, path) }) {
		return false
	}
	return !slices.ContainsFunc(s.Exclude, func(p string) bool { return MatchPattern(p, path) })
}

// Describe says in words what s selects, for messages: "everything", or
// e.g. "only weights and config; matching *.safetensors or config.json;
// excluding *.bin". Patterns that are not plain printable text are quoted.
func (s Selection) Describe() string {
	if s.All() {
		return "everything"
	}
	var parts []string
	if len(s.Only) > 0 {
		var names []string
		for _, c := range s.Only {
			if name := textsafe.Name(string(c)); !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
		parts = append(parts, "only "+wordList(names, "and"))
	}
	if len(s.Include) > 0 {
		parts = append(parts, "matching "+wordList(textsafe.Names(s.Include), "or"))
	}
	if len(s.Exclude) > 0 {
		parts = append(parts, "excluding "+wordList(textsafe.Names(s.Exclude), "and"))
	}
	return strings.Join(parts, "; ")
}

// wordList joins words as "a", "a and b", "a, b and c".
func wordList(words []string, conjunction string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conjunction + " " + words[len(words)-1]
}

// MatchPattern reports whether path matches pattern the way `hf download
// --include/--exclude` (huggingface_hub's snapshot_download allow_patterns
// and ignore_patterns) decides it. Those go through filter_repo_objects in
// huggingface_hub's src/huggingface_hub/utils/_paths.py, which
//   - turns every backslash into "/", in the pattern and in the path
//     (_normalize_separators, huggingface_hub PR #4506);
//   - appends "*" to a pattern that ends with "/", so that "path/to/"
//     selects everything under that folder (_add_wildcard_to_directories;
//     an empty pattern stays empty, PR #4402);
//   - matches with Python's fnmatch.fnmatchcase: case-sensitive on every
//     platform (PR #4435), the whole path at once. Its docstring notes
//     that "*" matches across path boundaries: "data/*.json" matches
//     data/file.json and data/subdir/file.json (PR #3710).
//
// fnmatchcase (CPython Lib/fnmatch.py, _translate) has no escape character
// and no special "**": "*" matches any run of characters, "/" and newlines
// included, "?" any one character, and "[...]" one character of a set:
// "[!...]" negates it, a "]" right after "[" or "[!" is a member, "a-z" is a
// range whose hyphen is the first one after a member, other hyphens are
// members, a reversed range such as "z-a" is dropped together with its two
// ends (so "[z-a]" matches nothing and "[!z-a]" any character), a leading
// "^" is a member, and a "[" without a closing "]" is itself; what remains
// of a set is read as Python's re reads the set fnmatch writes, corner
// cases included ("[y-^!-c]" is "[^-c]"). An empty pattern matches only the
// empty path. 1.1 million random patterns and paths made of the characters
// that matter ("[]!^-*?/\", ...) were checked against Python 3.11's
// fnmatch.fnmatchcase with the same separator and folder rules: no
// difference.
//
// Characters are Unicode code points; bytes that are not valid UTF-8 are
// taken as Python's file-system decoding takes them (surrogateescape: byte
// b is U+DC00+b).
func MatchPattern(pattern, path string) bool {
	pattern = strings.ReplaceAll(pattern, `\`, "/")
	if strings.HasSuffix(pattern, "/") {
		pattern += "*"
	}
	return matchGlob(parseGlob(decodeSurrogateEscape(pattern)), decodeSurrogateEscape(strings.ReplaceAll(path, `\`, "/")))
}

type globKind uint8

const (
	globLiteral globKind = iota
	globAny              // ?
	globStar             // *
	globClass            // [...]
)

type globToken struct {
	kind    globKind
	literal rune
	class   *runeClass
}

// runeClass is a bracket expression after fnmatch's translation.
type runeClass struct {
	negate bool
	// never: every range was empty; the class matches no character.
	never bool
	// any: a negated class whose ranges were all empty ("[!z-a]").
	any    bool
	ranges [][2]rune // inclusive; a single member is lo == hi
}

func (c *runeClass) matches(r rune) bool {
	switch {
	case c.never:
		return false
	case c.any:
		return true
	}
	in := slices.ContainsFunc(c.ranges, func(rg [2]rune) bool { return rg[0] <= r && r <= rg[1] })
	return in != c.negate
}

func (t globToken) matches(r rune) bool {
	switch t.kind {
	case globAny:
		return true
	case globClass:
		return t.class.matches(r)
	}
	return t.literal == r
}

// parseGlob tokenizes a pattern as CPython's fnmatch._translate does.
func parseGlob(pat []rune) []globToken {
	var tokens []globToken
	for i := 0; i < len(pat); {
		c := pat[i]
		i++
		switch c {
		case '*':
			if len(tokens) == 0 || tokens[len(tokens)-1].kind != globStar {
				tokens = append(tokens, globToken{kind: globStar})
			}
		case '?':
			tokens = append(tokens, globToken{kind: globAny})
		case '[':
			class, next, ok := parseClass(pat, i)
			if !ok {
				tokens = append(tokens, globToken{kind: globLiteral, literal: '['})
				continue
			}
			tokens = append(tokens, globToken{kind: globClass, class: class})
			i = next
		default:
			tokens = append(tokens, globToken{kind: globLiteral, literal: c})
		}
	}
	return tokens
}

// parseClass reads the bracket expression whose "[" ends just before
// pat[i]. It returns the class and the index after its "]", or ok false
// when there is no closing "]" (the "[" is then a literal). It builds the
// regular-expression set fnmatch builds, then reads it as Python's re does.
func parseClass(pat []rune, i int) (class *runeClass, next int, ok bool) {
	n := len(pat)
	j := i
	if j < n && pat[j] == '!' {
		j++
	}
	if j < n && pat[j] == ']' {
		j++
	}
	for j < n && pat[j] != ']' {
		j++
	}
	if j >= n {
		return nil, 0, false
	}
	var stuff []setChar
	if !slices.Contains(pat[i:j], '-') {
		stuff = setChars(pat[i:j])
	} else {
		// A hyphen after a member makes a range; the search for the next
		// one starts past the range's end, so "a-b-c" is a-b, "-", "c".
		var chunks [][]rune
		k := i + 1
		if pat[i] == '!' {
			k = i + 2
		}
		for {
			k = indexRune(pat, '-', k, j)
			if k < 0 {
				break
			}
			chunks = append(chunks, slices.Clone(pat[i:k]))
			i = k + 1
			k += 3
		}
		if chunk := pat[i:j]; len(chunk) > 0 {
			chunks = append(chunks, slices.Clone(chunk))
		} else {
			chunks[len(chunks)-1] = append(chunks[len(chunks)-1], '-')
		}
		// Drop empty (reversed) ranges with both their ends.
		for k := len(chunks) - 1; k > 0; k-- {
			prev, cur := chunks[k-1], chunks[k]
			if prev[len(prev)-1] > cur[0] {
				chunks[k-1] = append(prev[:len(prev)-1:len(prev)-1], cur[1:]...)
				chunks = slices.Delete(chunks, k, k+1)
			}
		}
		// Members are escaped; the hyphens joining chunks are range
		// operators.
		for m, chunk := range chunks {
			if m > 0 {
				stuff = append(stuff, setChar{r: '-', raw: true})
			}
			stuff = append(stuff, setChars(chunk)...)
		}
	}
	class = &runeClass{}
	switch {
	case len(stuff) == 0:
		class.never = true
		return class, j + 1, true
	case len(stuff) == 1 && stuff[0].r == '!':
		class.any = true
		return class, j + 1, true
	case stuff[0].r == '!':
		class.negate = true
		stuff = stuff[1:]
	}
	// Python's re: a member followed by an unescaped "-" and another
	// member is a range; a "-" at the end is a member.
	for p := 0; p < len(stuff); {
		lo := stuff[p].r
		p++
		if p < len(stuff) && stuff[p].raw && stuff[p].r == '-' {
			p++
			if p == len(stuff) {
				class.ranges = append(class.ranges, [2]rune{lo, lo}, [2]rune{'-', '-'})
				break
			}
			hi := stuff[p].r
			p++
			if hi < lo {
				// re refuses the set ("bad character range") and fnmatch
				// raises; such a pattern selects nothing.
				return &runeClass{never: true}, j + 1, true
			}
			class.ranges = append(class.ranges, [2]rune{lo, hi})
			continue
		}
		class.ranges = append(class.ranges, [2]rune{lo, lo})
	}
	return class, j + 1, true
}

// setChar is a character of the set fnmatch writes between "[" and "]";
// raw marks the unescaped hyphens that make ranges.
type setChar struct {
	r   rune
	raw bool
}

// setChars returns members as set characters: none is a range operator.
func setChars(members []rune) []setChar {
	out := make([]setChar, len(members))
	for k, r := range members {
		out[k] = setChar{r: r}
	}
	return out
}

// indexRune returns the index of the first r in s[from:to], or -1, like
// Python's str.find(r, from, to).
func indexRune(s []rune, r rune, from, to int) int {
	for k := from; k < to && k < len(s); k++ {
		if s[k] == r {
			return k
		}
	}
	return -1
}

// matchGlob matches the whole of name. A star matches any run, so on a
// mismatch only the latest star needs to take one more character.
func matchGlob(tokens []globToken, name []rune) bool {
	ti, ni := 0, 0
	starToken, starName := -1, 0
	for ni < len(name) {
		if ti < len(tokens) {
			if tokens[ti].kind == globStar {
				starToken, starName = ti, ni
				ti++
				continue
			}
			if tokens[ti].matches(name[ni]) {
				ti++
				ni++
				continue
			}
		}
		if starToken < 0 {
			return false
		}
		starName++
		ti, ni = starToken+1, starName
	}
	for ti < len(tokens) && tokens[ti].kind == globStar {
		ti++
	}
	return ti == len(tokens)
}

// decodeSurrogateEscape returns the code points of s, each byte that is not
// part of valid UTF-8 as U+DC00 plus the byte (Python's surrogateescape).
func decodeSurrogateEscape(s string) []rune {
	runes := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			r = 0xDC00 + rune(s[i])
		}
		runes = append(runes, r)
		i += size
	}
	return runes
}
