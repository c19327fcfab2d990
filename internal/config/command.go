package config

import "github.com/govs-lb/govs/internal/script"

// SplitCommand splits a script line into words as keepalived does (it runs
// scripts directly, not through a shell): words are separated by blanks,
// single and double quotes group, a backslash outside single quotes escapes
// the next character.
func SplitCommand(s string) ([]string, error) { return script.Split(s) }
