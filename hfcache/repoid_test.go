package hfcache

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRepoID(t *testing.T) {
	for _, c := range []struct {
		in, folder string
	}{
		{"gpt2", "models--gpt2"},
		{"openai-community/gpt2", "models--openai-community--gpt2"},
		{"julien-c/EsperBERTo-small", "models--julien-c--EsperBERTo-small"},
		{"Foo-BAR_foo.bar123/x", "models--Foo-BAR_foo.bar123--x"},
		{"_a/b_", "models--_a--b_"},
	} {
		id, err := ParseRepoID(c.in)
		require.NoError(t, err, c.in)
		assert.Equal(t, c.in, id.String())
		assert.Equal(t, c.folder, id.FolderName())
		back, err := ParseFolderName(c.folder)
		require.NoError(t, err, c.folder)
		assert.Equal(t, id, back)
	}
}

func TestParseRepoIDRefuses(t *testing.T) {
	// huggingface_hub's validate_repo_id refuses each of these.
	for _, in := range []string{
		"", "/", "a/", "/a", "a/b/c", "datasets/foo/bar",
		"foo--bar", "a/foo--bar", "other..repo", ".repo", "repo.", "-repo", "repo-",
		"foo.git", "a b", "a/b c", "ü/x", "a\\b", "a\x00b",
		string(make([]byte, 97)),
	} {
		_, err := ParseRepoID(in)
		assert.ErrorIs(t, err, ErrInvalidRepoID, "%q", in)
	}
	long := "a"
	for len(long) < 96 {
		long += "b"
	}
	_, err := ParseRepoID(long)
	assert.NoError(t, err, "96 characters are allowed")
	_, err = ParseRepoID(long + "c")
	assert.ErrorIs(t, err, ErrInvalidRepoID, "97 characters are not")
}

func TestRepoTypes(t *testing.T) {
	for _, c := range []struct {
		t      RepoType
		id     string
		folder string
	}{
		{Model, "a/b", "models--a--b"},
		{Dataset, "huggingface/DataMeasurementsFiles", "datasets--huggingface--DataMeasurementsFiles"},
		{Dataset, "glue", "datasets--glue"},
		{Space, "dalle-mini/dalle-mini", "spaces--dalle-mini--dalle-mini"},
	} {
		id, err := ParseTypedRepoID(c.t, c.id)
		require.NoError(t, err)
		assert.Equal(t, c.folder, id.FolderName())
		back, err := ParseFolderName(c.folder)
		require.NoError(t, err)
		assert.Equal(t, id, back)
	}
	_, err := ParseTypedRepoID("bucket", "a/b")
	assert.ErrorIs(t, err, ErrInvalidRepoID)
	for _, name := range []string{".locks", "models", "models--", "models--a--b--c", "model--a", "bucketss--a", "models--a--", "version.txt", "models---a"} {
		_, err := ParseFolderName(name)
		assert.ErrorIs(t, err, ErrInvalidRepoID, "%q", name)
	}
}
