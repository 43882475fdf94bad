package publisher

import (
	"errors"
	"testing"

	"xcatbm/messages"
	"xcatbm/xcat"
)

func TestCheckArgs(t *testing.T) {
	t.Parallel()
	img := func(names ...string) *messages.RegisterImagesArgs {
		a := &messages.RegisterImagesArgs{Cloud: "c"}
		for _, n := range names {
			a.Images = append(a.Images, messages.ImageRegistration{XCATName: n, Name: n})
		}
		return a
	}
	tests := []struct {
		name     string
		args     messages.JobArgs
		maxNodes int
		tooLarge bool
		invalid  bool
	}{
		{"register within the default bound", &messages.RegisterNodesArgs{NodeRange: "n[1-10000]"}, 0, false, false},
		{"register over the default bound", &messages.RegisterNodesArgs{NodeRange: "n[1-1000000]"}, 0, true, true},
		{"register over a given bound", &messages.RegisterNodesArgs{NodeRange: "n[1-11]"}, 10, true, true},
		{"no bound", &messages.RegisterNodesArgs{NodeRange: "n[1-1000000]"}, -1, false, false},
		{"remove over the bound", &messages.RemoveNodesArgs{NodeRange: "n[1-10001]"}, 0, true, true},
		{"metacharacter", &messages.RegisterNodesArgs{NodeRange: "n1;reboot"}, 0, false, true},
		{"group", &messages.RemoveNodesArgs{NodeRange: "compute,-n01"}, 1, true, true},
		{"osimage", img("rhels7.5-x86_64-install-compute"), 0, false, false},
		{"osimage outside the safe set", img("ok", "bad name"), 0, false, true},
	}
	for _, tt := range tests {
		err := CheckArgs(tt.args, tt.maxNodes)
		var tl *xcat.NoderangeTooLargeError
		if errors.As(err, &tl) != tt.tooLarge || errors.Is(err, xcat.ErrInvalidInput) != tt.invalid {
			t.Errorf("%s: %v, want too large %v, invalid %v", tt.name, err, tt.tooLarge, tt.invalid)
		}
	}
}
