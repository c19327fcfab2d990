// Package config turns a govs YAML file into one validated model: the
// desired state of the director. Every error names its place as
// FILE:LINE:COL, unknown keys are errors, and all errors of a file are
// reported at once so an operator fixes them in one pass.
//
// The keepalived.conf importer (subpackage importer, over the syntax read by
// subpackage keepalived) produces the same model, through the exported
// helpers of build.go; importer.Load reads a file of either format.
// This package must not import the director, the dataplanes, the API or
// its subpackages (the importer imports it).
package config
