package token

import (
	"os"
	"testing"
)

var testTmp string

func TestMain(m *testing.M) {
	var err error
	if testTmp, err = os.MkdirTemp("", "regctl-token-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(testTmp)
	os.Exit(code)
}

func tempDir() (string, error) { return testTmp, nil }
