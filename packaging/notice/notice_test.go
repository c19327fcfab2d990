package main

import (
	"bytes"
	"os"
	"testing"
)

// TestNoticeUpToDate fails when NOTICE or THIRD_PARTY_LICENSES no longer
// match go.mod: a dependency was added, removed or upgraded without
// `make notice`.
func TestNoticeUpToDate(t *testing.T) {
	mods, err := listModules("../..")
	if err != nil {
		t.Fatal(err)
	}
	notice, licenses, err := render(mods)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"../../NOTICE": notice, "../../THIRD_PARTY_LICENSES": licenses} {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v: run `make notice`", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `make notice` and commit the result", name)
		}
	}
}

func TestClassify(t *testing.T) {
	for text, want := range map[string]string{
		"Permission is hereby granted, free of charge, to any person":                      "MIT",
		"Apache License\n   Version 2.0, January 2004":                                     "Apache-2.0",
		"Redistribution and use in source and binary forms ... Neither the name of Google": "BSD-3-Clause",
		"Redistribution and use in source and binary forms, with or without modification":  "BSD-2-Clause",
		"something else": "unknown",
	} {
		if got := classify([]byte(text)); got != want {
			t.Errorf("classify(%q) = %s, want %s", text, got, want)
		}
	}
}
