package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	var host string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host = r.Host
		io.WriteString(w, "hello "+r.URL.RequestURI())
	}))
	defer srv.Close()
	sum := md5.Sum([]byte("hello /index.html?x=1"))
	for _, args := range [][]string{
		{srv.URL + "/index.html?x=1"},
		{"--connect", strings.TrimPrefix(srv.URL, "http://"), "--host", "www.example.test", "http://www.example.test/index.html?x=1"},
	} {
		cmd := digestCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(args)
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		want := "HTTP status: 200\nBody bytes: 21\nMD5SUM = " + hex.EncodeToString(sum[:]) + "\n"
		if out.String() != want {
			t.Fatalf("%v: got\n%s\nwant\n%s", args, out.String(), want)
		}
	}
	if host != "www.example.test" {
		t.Fatalf("Host header %q", host)
	}
	cmd := digestCmd()
	cmd.SetArgs([]string{"ftp://x/"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err == nil {
		t.Fatal("an ftp URL was accepted")
	}
}
