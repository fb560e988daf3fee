package when

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2026-12-31", want: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)},
		{in: "2026-12-31T18:30:00Z", want: time.Date(2026, 12, 31, 18, 30, 0, 0, time.UTC)},
		{in: "2026-12-31T18:30:00+02:00", want: time.Date(2026, 12, 31, 16, 30, 0, 0, time.UTC)},
		{in: "90d", want: now.Add(90 * 24 * time.Hour)},
		{in: "2w", want: now.Add(14 * 24 * time.Hour)},
		{in: "12h", want: now.Add(12 * time.Hour)},
		{in: "1d12h", want: now.Add(36 * time.Hour)},
		{in: "1h30m", want: now.Add(90 * time.Minute)},
		{in: " 5s ", want: now.Add(5 * time.Second)},
		{in: "", wantErr: true},
		{in: "tomorrow", wantErr: true},
		{in: "0s", wantErr: true},
		{in: "-5h", wantErr: true},
		{in: "12", wantErr: true},
		{in: "d", wantErr: true},
		{in: "99999999999999d", wantErr: true},
		{in: "2026-13-01", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if !tt.wantErr && !got.Equal(tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"90d", "2026-12-31", "1d12h", "2026-12-31T18:30:00Z", "5s", "1w2d3h4m5s"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s, now)
		if err != nil {
			return
		}
		if d, derr := ParseDuration(s); derr == nil && d > 0 && !got.After(now) {
			t.Fatalf("Parse(%q) = %v, not after now for duration %v", s, got, d)
		}
	})
}
