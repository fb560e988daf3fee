package freshhost

import "testing"

func TestRegctlYAML(t *testing.T) {
	got := RegctlYAML("r.test", "backend: mongo\nurl: \"mongodb://db:27017/regctl\"\n", "fail2ban:\n  bantime: 40s\n")
	want := `domains:
  registry: r.test
database:
  backend: mongo
  url: "mongodb://db:27017/regctl"
images:
  nginx: ` + NginxImage + `
  registry: ` + RegistryImage + `
fail2ban:
  bantime: 40s
`
	if got != want {
		t.Errorf("RegctlYAML:\n%s\nwant:\n%s", got, want)
	}
}
