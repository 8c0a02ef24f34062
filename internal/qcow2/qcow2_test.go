package qcow2

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// qemuImg runs the real qemu-img: the images are the ones operators make.
func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	require.NoError(t, err, "qemu-img %v: %s (qemu-utils is installed by `make deps`)", args, out)
}

func read(t *testing.T, path string) (Image, error) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	return Read(f, st.Size())
}

func TestReadImagesQemuImgMade(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	qemuImg(t, "create", "-f", "qcow2", at("v3.qcow2"), "64M")
	qemuImg(t, "create", "-f", "qcow2", "-o", "compat=0.10", at("v2.qcow2"), "32M")
	qemuImg(t, "create", "-f", "qcow2", "-o", "cluster_size=2M", at("big-clusters.qcow2"), "16M")
	qemuImg(t, "create", "-f", "raw", at("disk.raw"), "8M")
	qemuImg(t, "create", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", at("shadow.qcow2"), "1M")
	qemuImg(t, "create", "-f", "qcow2", "-o", "compat=0.10", "-b", "/etc/shadow", "-F", "raw", at("shadow-v2.qcow2"), "1M")
	qemuImg(t, "create", "-f", "qcow2", "-b", at("v3.qcow2"), "-F", "qcow2", at("overlay.qcow2"))
	qemuImg(t, "create", "-f", "qcow2", "-o", "data_file="+at("data.raw"), at("datafile.qcow2"), "4M")
	qemuImg(t, "create", "-f", "qcow2", "-o", "data_file="+at("data2.raw")+",data_file_raw=on", at("datafile-raw.qcow2"), "4M")
	qemuImg(t, "convert", "-O", "qcow2", at("overlay.qcow2"), at("flattened.qcow2"))

	cases := []struct {
		name             string
		format           string
		version          uint32
		size             uint64
		backing, bformat string
		dataFile         string
	}{
		{"v3.qcow2", "qcow2", 3, 64 << 20, "", "", ""},
		{"v2.qcow2", "qcow2", 2, 32 << 20, "", "", ""},
		{"big-clusters.qcow2", "qcow2", 3, 16 << 20, "", "", ""},
		{"disk.raw", "raw", 0, 8 << 20, "", "", ""},
		{"shadow.qcow2", "qcow2", 3, 1 << 20, "/etc/shadow", "raw", ""},
		{"shadow-v2.qcow2", "qcow2", 2, 1 << 20, "/etc/shadow", "raw", ""},
		{"overlay.qcow2", "qcow2", 3, 64 << 20, at("v3.qcow2"), "qcow2", ""},
		{"datafile.qcow2", "qcow2", 3, 4 << 20, "", "", at("data.raw")},
		{"datafile-raw.qcow2", "qcow2", 3, 4 << 20, "", "", at("data2.raw")},
		{"flattened.qcow2", "qcow2", 3, 64 << 20, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img, err := read(t, at(tc.name))
			require.NoError(t, err)
			assert.Equal(t, tc.format, img.Format)
			assert.Equal(t, tc.version, img.Version)
			assert.Equal(t, tc.size, img.VirtualSize)
			assert.Equal(t, tc.backing, img.BackingFile)
			assert.Equal(t, tc.bformat, img.BackingFormat)
			assert.Equal(t, tc.dataFile != "", img.DataFile)
			assert.Equal(t, tc.dataFile, img.DataFileName)
			err = img.SelfContained(at(tc.name))
			if tc.backing == "" && tc.dataFile == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "qemu-img convert -O qcow2 "+at(tc.name))
			if tc.backing != "" {
				assert.Contains(t, err.Error(), tc.backing)
			} else {
				assert.Contains(t, err.Error(), tc.dataFile)
			}
		})
	}
}

// A header hpcvm cannot judge is refused, never taken for self-contained.
func TestReadRefusesDamagedHeaders(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.qcow2")
	qemuImg(t, "create", "-f", "qcow2", good, "1M")
	orig, err := os.ReadFile(good)
	require.NoError(t, err)
	patch := func(name string, edit func(b []byte) []byte) string {
		b := edit(append([]byte(nil), orig...))
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	for name, edit := range map[string]func([]byte) []byte{
		"truncated":       func(b []byte) []byte { return b[:40] },
		"version 4":       func(b []byte) []byte { b[7] = 4; return b },
		"cluster bits 30": func(b []byte) []byte { b[23] = 30; return b },
		"header length":   func(b []byte) []byte { b[100], b[101] = 0xff, 0xff; return b },
		"backing beyond":  func(b []byte) []byte { b[8] = 0x7f; b[19] = 10; return b },
		"extension runs past": func(b []byte) []byte {
			// The first extension (after the 112-byte header) claims to be
			// longer than the cluster.
			b[112+4], b[112+5] = 0x7f, 0xff
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := read(t, patch(name, edit))
			assert.Error(t, err)
		})
	}
	// Fewer than four bytes, or no magic: raw.
	img, err := read(t, patch("tiny", func(b []byte) []byte { return b[:3] }))
	require.NoError(t, err)
	assert.Equal(t, "raw", img.Format)
}

// An encrypted qcow2 needs a secret hpcvm never gives QEMU: it is refused
// with the conversion that makes it usable, and that conversion works.
func TestReadRefusesEncryptedImages(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	key := at("key")
	require.NoError(t, os.WriteFile(key, []byte("abc"), 0o600))
	secret := "secret,id=sec0,file=" + key
	qemuImg(t, "create", "-f", "qcow2", "--object", secret, "-o", "encrypt.format=luks,encrypt.key-secret=sec0", at("luks.qcow2"), "64M")
	qemuImg(t, "create", "-f", "qcow2", "--object", secret, "-o", "compat=0.10,encrypt.format=aes,encrypt.key-secret=sec0", at("aes-v2.qcow2"), "64M")
	qemuImg(t, "create", "-f", "qcow2", "--object", secret, "-o", "encrypt.format=aes,encrypt.key-secret=sec0", at("aes-v3.qcow2"), "64M")
	for name, want := range map[string]struct {
		method  uint32
		version uint32
		says    string
	}{
		"luks.qcow2":   {cryptLUKS, 3, "encrypted with LUKS"},
		"aes-v2.qcow2": {cryptAES, 2, "encrypted with the old AES-CBC method"},
		"aes-v3.qcow2": {cryptAES, 3, "encrypted with the old AES-CBC method"},
	} {
		t.Run(name, func(t *testing.T) {
			img, err := read(t, at(name))
			require.NoError(t, err)
			assert.Equal(t, want.version, img.Version)
			assert.Equal(t, want.method, img.CryptMethod)
			err = img.SelfContained(at(name))
			require.Error(t, err)
			assert.Contains(t, err.Error(), want.says)
			assert.Contains(t, err.Error(), "file.filename="+at(name))
			assert.Contains(t, err.Error(), "-O qcow2 <new image>")

			// The conversion the message names gives a usable image.
			plain := at("plain-" + name)
			qemuImg(t, "convert", "--object", secret, "--image-opts",
				"driver=qcow2,file.filename="+at(name)+",encrypt.key-secret=sec0", "-O", "qcow2", plain)
			img, err = read(t, plain)
			require.NoError(t, err)
			assert.Zero(t, img.CryptMethod)
			assert.NoError(t, img.SelfContained(plain))
		})
	}
}
