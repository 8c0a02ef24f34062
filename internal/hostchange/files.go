package hostchange

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Some host changes are a file hpcvm writes for a cluster into another
// program's configuration directory (a registry agent's, the host
// resolver's), named hpcvm-<cluster><ext>. Its content (its mark) proves
// it is hpcvm's file of that cluster: a file of that name without the
// proof is neither replaced nor removed, and one with it is removed by an
// undo whether or not the audit log still says it was written. Where hpcvm
// wrote one is read back from the audit log (done records, and pending
// ones whose outcome was never recorded), so a destroy needs no cluster
// file to find it; the directories an undo is given are looked in too.

// fileKind is one kind of such file.
type fileKind struct {
	what  string // "service discovery record": the change, in the audit log
	noun  string // "registry file": what a file of this kind is
	ext   string // ".json"
	owned func(content []byte, cluster string) bool
	// notOurs says what is missing from a file that is not hpcvm's, with
	// a %q for the cluster's name.
	notOurs string
}

// clusterFile is the cluster's file of kind ext in dir.
func clusterFile(dir, cluster, ext string) string {
	return filepath.Join(dir, "hpcvm-"+cluster+ext)
}

// maxRecordSize bounds what is read of a file in another program's
// configuration directory.
const maxRecordSize = 4 << 20

// read says whether the cluster's file of this kind is at path (false,
// nil when there is none), and its content. It reads only a regular file,
// not through a symbolic link, and at most maxRecordSize: the directory
// may belong to another program's user.
func (k fileKind) read(path, cluster string) (exists bool, content []byte, err error) {
	root, err := os.OpenRoot(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil, nil // no directory, no file (a root not made on this host)
	}
	if err != nil {
		return false, nil, err
	}
	defer root.Close()
	name := filepath.Base(path)
	st, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	if !st.Mode().IsRegular() {
		return true, nil, &RefusedError{fmt.Sprintf("%s is not a regular file (%s), so it is not hpcvm's %s of cluster %s: hpcvm neither follows, replaces nor removes it; move it away", path, st.Mode().Type(), k.noun, cluster)}
	}
	if st.Size() > maxRecordSize {
		return true, nil, k.notOursError(path, cluster)
	}
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return true, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return true, nil, err
	}
	if len(b) > maxRecordSize || !k.owned(b, cluster) {
		return true, b, k.notOursError(path, cluster)
	}
	return true, b, nil
}

// current says whether path holds exactly doc, as the cluster's file.
func (k fileKind) current(path, cluster string, doc []byte) (bool, error) {
	exists, b, err := k.read(path, cluster)
	return exists && bytes.Equal(b, doc), err
}

func (k fileKind) notOursError(path, cluster string) error {
	return &RefusedError{fmt.Sprintf("%s exists but is not hpcvm's %s of cluster %s ("+k.notOurs+"), so hpcvm neither replaces nor removes it: move it away, or give the cluster another name", path, k.noun, cluster, cluster)}
}

func (k fileKind) change(cluster, path string) string {
	return k.what + " of cluster " + cluster + " (" + path + ")"
}

func digest(b []byte) string {
	if b == nil {
		return "absent"
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// write makes path hold doc when it is missing or differs (atomically: a
// reader never sees half a file), recording it; old is what was there
// (nil for nothing). The caller holds the host-change lock.
func (k fileKind) write(j *journal, path string, doc []byte) (old []byte, changed bool, err error) {
	if _, old, err = k.read(path, j.meta.Cluster); err != nil {
		return nil, false, err
	}
	r := Record{Netns: "-", Change: k.change(j.meta.Cluster, path), Before: digest(old), After: digest(doc)}
	if bytes.Equal(old, doc) {
		r.Outcome = OutcomeUnchanged
		j.add(r)
		return old, false, nil
	}
	r.Command = "write " + path
	return old, true, j.do(r, func() error { return writeInDir(path, j.meta.Cluster, doc) })
}

// writeInDir replaces path with doc inside its directory only: a link
// planted there cannot send the write elsewhere. The temporary name ends in
// .tmp, so no program that loads *.json or *.conf reads half a file.
func writeInDir(path, cluster string, doc []byte) error {
	root, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer root.Close()
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmpName := ".hpcvm-" + cluster + "-" + hex.EncodeToString(suffix[:]) + ".tmp"
	tmp, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	defer root.Remove(tmpName)
	if _, err := tmp.Write(doc); err != nil {
		tmp.Close()
		return err
	}
	// The other program reads it, whoever it runs as; nothing secret in it.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return root.Rename(tmpName, filepath.Base(path))
}

// remove removes path if it is still the cluster's file, recording it.
// With lenient, a file there that is not the cluster's is left alone
// silently (a place looked in, not one the log says hpcvm wrote).
func (k fileKind) remove(j *journal, path string, lenient bool) (removed bool, err error) {
	exists, old, err := k.read(path, j.meta.Cluster)
	var refused *RefusedError
	if lenient && errors.As(err, &refused) {
		return false, nil
	}
	if err != nil || !exists {
		return false, err
	}
	err = j.do(Record{Netns: "-", Change: k.change(j.meta.Cluster, path), Command: "remove " + path,
		Before: digest(old), After: "absent"}, func() error {
		root, err := os.OpenRoot(filepath.Dir(path))
		if err != nil {
			return err
		}
		defer root.Close()
		return root.Remove(filepath.Base(path))
	})
	return err == nil, err
}

// removeAll removes the cluster's files of this kind that the audit log
// says hpcvm wrote (or may have written) and has not removed since, and
// the cluster's marked file in each of dirs; with only set, that file
// alone (a start's rollback removes what it wrote, not a file an earlier
// start wrote elsewhere), found by its mark even if its record was lost.
// It returns the paths it looked at and those the log names for the
// cluster, for the reload that may be owed.
func (k fileKind) removeAll(j *journal, only string, dirs []string) (removed int, looked []string, err error) {
	paths, named, err := k.written(j)
	if err != nil {
		return 0, nil, err
	}
	if only == "" {
		looked = append(looked, named...)
	}
	logged := map[string]bool{}
	for _, p := range paths {
		logged[p] = true
	}
	for _, dir := range dirs {
		if p := clusterFile(dir, j.meta.Cluster, k.ext); !logged[p] {
			paths = append(paths, p)
		}
	}
	if only != "" {
		paths = []string{only}
	}
	for _, path := range paths {
		looked = append(looked, path)
		ok, err := k.remove(j, path, !logged[path])
		if err != nil {
			return removed, looked, err
		}
		if ok {
			removed++
		}
	}
	return removed, looked, nil
}

// written lists the cluster's files of this kind that the audit log says
// hpcvm wrote, or may have written (a pending record without outcome), and
// has not surely removed since; named are all the files of this kind the
// log names for the cluster, removed or not.
func (k fileKind) written(j *journal) (written, named []string, err error) {
	recs, _, err := j.h.Audit.ReadSettled(func(r Record) bool {
		_, ok := k.pathOf(r)
		return r.Cluster == j.meta.Cluster && (r.Outcome == OutcomeDone || r.Unsure()) && ok
	})
	if err != nil {
		return nil, nil, err
	}
	left := map[string]bool{}
	for _, r := range recs {
		path, _ := k.pathOf(r)
		// A rollback may write too (an entry put back), so the verb, not
		// the action, says whether the file was left there; a removal
		// that may not have happened may have left it there too.
		left[path] = strings.HasPrefix(r.Command, "write ") || r.Unsure()
	}
	for p := range left {
		named = append(named, p)
	}
	sort.Strings(named)
	return sortedTrue(left), named, nil
}

// pathOf is the file of this kind that a record wrote or removed.
func (k fileKind) pathOf(r Record) (string, bool) {
	for _, verb := range []string{"write ", "remove "} {
		if p, ok := strings.CutPrefix(r.Command, verb); ok && filepath.Ext(p) == k.ext && strings.HasPrefix(filepath.Base(p), "hpcvm-") {
			return p, true
		}
	}
	return "", false
}

func sortedTrue(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
