package hfcache

import (
	"errors"
	"fmt"
	"strings"
)

// RepoType is the kind of a Hub repository. It is the first part of the
// repository's folder name, pluralized.
type RepoType string

// The repository types that have folders in the cache.
const (
	Model   RepoType = "model"
	Dataset RepoType = "dataset"
	Space   RepoType = "space"
)

// ErrInvalidRepoID is wrapped by the errors for a repository id or folder
// name that the Hub would not accept.
var ErrInvalidRepoID = errors.New("invalid Hugging Face repo id")

// folderSeparator joins the parts of a repository folder name. The Hub
// forbids it inside ids, which is what makes folder names unambiguous.
const folderSeparator = "--"

// maxRepoPart is huggingface_hub's limit on the length of a repo name.
const maxRepoPart = 96

// RepoID names a Hub repository: "NAME" or "NAMESPACE/NAME" of a type.
type RepoID struct {
	Type      RepoType
	Namespace string // the user or organization; "" for ids like "gpt2"
	Name      string
}

// ParseRepoID parses a model id, "ORG/NAME" or "NAME".
func ParseRepoID(s string) (RepoID, error) { return ParseTypedRepoID(Model, s) }

// ParseTypedRepoID parses "NAMESPACE/NAME" or "NAME" as a repository of
// type t. The rules are huggingface_hub's validate_repo_id: one or two
// parts of at most 96 characters out of A-Z a-z 0-9 "_" "-" ".", each
// starting and ending with a letter, digit or "_", no "--" or "..", and no
// ".git" at the end.
func ParseTypedRepoID(t RepoType, s string) (RepoID, error) {
	if err := checkRepoType(t); err != nil {
		return RepoID{}, err
	}
	parts := strings.Split(s, "/")
	var id RepoID
	switch len(parts) {
	case 1:
		id = RepoID{Type: t, Name: parts[0]}
	case 2:
		if parts[0] == "" {
			return RepoID{}, fmt.Errorf("%w %q: empty namespace", ErrInvalidRepoID, s)
		}
		id = RepoID{Type: t, Namespace: parts[0], Name: parts[1]}
	default:
		return RepoID{}, fmt.Errorf("%w %q: want NAME or ORG/NAME", ErrInvalidRepoID, s)
	}
	if err := id.check(); err != nil {
		return RepoID{}, fmt.Errorf("%w %q: %s", ErrInvalidRepoID, s, err)
	}
	return id, nil
}

// String returns "NAMESPACE/NAME", or "NAME" without a namespace.
func (r RepoID) String() string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// FolderName is the repository's folder in the cache:
// "models--ORG--NAME", "datasets--NAME", ...
func (r RepoID) FolderName() string {
	parts := []string{string(r.Type) + "s"}
	if r.Namespace != "" {
		parts = append(parts, r.Namespace)
	}
	return strings.Join(append(parts, r.Name), folderSeparator)
}

// ParseFolderName is the inverse of FolderName. It refuses a name that
// FolderName would not produce.
func ParseFolderName(name string) (RepoID, error) {
	parts := strings.Split(name, folderSeparator)
	if len(parts) < 2 || len(parts) > 3 || !strings.HasSuffix(parts[0], "s") {
		return RepoID{}, fmt.Errorf("%w: %q is not a repository folder name (TYPEs--[ORG--]NAME)", ErrInvalidRepoID, name)
	}
	t := RepoType(strings.TrimSuffix(parts[0], "s"))
	id, err := ParseTypedRepoID(t, strings.Join(parts[1:], "/"))
	if err != nil {
		return RepoID{}, fmt.Errorf("folder %q: %w", name, err)
	}
	return id, nil
}

func checkRepoType(t RepoType) error {
	switch t {
	case Model, Dataset, Space:
		return nil
	}
	return fmt.Errorf("%w: unknown repo type %q (want model, dataset or space)", ErrInvalidRepoID, string(t))
}

func (r RepoID) check() error {
	if err := checkRepoType(r.Type); err != nil {
		return err
	}
	if r.Namespace != "" {
		if err := checkRepoPart(r.Namespace); err != nil {
			return fmt.Errorf("namespace: %s", err)
		}
	}
	if err := checkRepoPart(r.Name); err != nil {
		return fmt.Errorf("name: %s", err)
	}
	if strings.HasSuffix(r.Name, ".git") {
		return errors.New(`name ends with ".git"`)
	}
	return nil
}

func checkRepoPart(p string) error {
	switch {
	case p == "":
		return errors.New("empty")
	case len(p) > maxRepoPart:
		return fmt.Errorf("longer than %d characters", maxRepoPart)
	case strings.Contains(p, "--") || strings.Contains(p, ".."):
		return errors.New(`contains "--" or ".."`)
	case !isWordByte(p[0]) || !isWordByte(p[len(p)-1]):
		return errors.New(`starts or ends with "-" or "."`)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !isWordByte(c) && c != '-' && c != '.' {
			return fmt.Errorf("character %q is not allowed (only A-Z, a-z, 0-9, _, - and . are)", c)
		}
	}
	return nil
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
