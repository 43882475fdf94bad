package worker

import (
	"testing"
)

func TestHardwareParsers(t *testing.T) {
	for _, c := range []struct {
		in      string
		mem     int
		memErr  bool
		disk    int
		diskErr bool
	}{
		{in: "131072MB", mem: 131072, disk: 128},
		{in: "128GB", mem: 131072, disk: 128},
		{in: "16384", mem: 16384, disk: 16384},
		{in: "sda:480GB,sdb:1TB", memErr: true, disk: 480},
		{in: "1.5TB", mem: 1572864, disk: 1536},
		{in: "512KB", memErr: true, diskErr: true},
		{in: "lots", memErr: true, diskErr: true},
		{in: "", memErr: true, diskErr: true},
	} {
		mem, err := ParseMemoryMB(c.in)
		if (err != nil) != c.memErr || !c.memErr && mem != c.mem {
			t.Errorf("ParseMemoryMB(%q) = %d, %v", c.in, mem, err)
		}
		disk, err := ParseFirstDiskGB(c.in)
		if (err != nil) != c.diskErr || !c.diskErr && disk != c.disk {
			t.Errorf("ParseFirstDiskGB(%q) = %d, %v", c.in, disk, err)
		}
	}
	if rc := DeriveResourceClass(32, 131072); rc != "BAREMETAL_32C128G" {
		t.Errorf("DeriveResourceClass = %s", rc)
	}
	for in, want := range map[string]string{"AA:BB:CC:00:00:01": "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02|aa:bb:cc:00:00:03": "aa:bb:cc:00:00:02",
		"aa:bb:cc:00:00:04!n1-eth1": "aa:bb:cc:00:00:04", "": "", "zz": ""} {
		got, err := firstMAC(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("firstMAC(%q) = %q, %v", in, got, err)
		}
	}
}

func FuzzHardwareParsers(f *testing.F) {
	for _, s := range []string{"131072MB", "sda:480GB,sdb:1TB", "1.5T", "16384", "9e99GB", "aa:bb:cc:00:00:01|x!y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if mb, err := ParseMemoryMB(s); err == nil && mb < 1 {
			t.Errorf("ParseMemoryMB(%q) = %d without error", s, mb)
		}
		if gb, err := ParseFirstDiskGB(s); err == nil && gb < 1 {
			t.Errorf("ParseFirstDiskGB(%q) = %d without error", s, gb)
		}
		if mac, err := firstMAC(s); err == nil && len(mac) != 17 {
			t.Errorf("firstMAC(%q) = %q", s, mac)
		}
	})
}

func TestProgressInterval(t *testing.T) {
	for _, tc := range []struct{ total, want int }{{0, 25}, {50, 25}, {2500, 25}, {2599, 25}, {10000, 100}, {100000, 1000}} {
		if got := progressInterval(tc.total); got != tc.want {
			t.Errorf("progressInterval(%d) = %d, want %d", tc.total, got, tc.want)
		}
	}
	if c := min(progressInterval(100000), syncChunkMax); c != syncChunkMax {
		t.Errorf("sync chunk of a 100,000-node job is %d, want the bound %d", c, syncChunkMax)
	}
}
