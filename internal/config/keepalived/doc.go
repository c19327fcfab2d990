// Package keepalived reads keepalived.conf files into a syntax tree.
//
// It does the syntax layer only, as keepalived 2.2's lib/parser.c does it:
// comments, quoting, braces, include, @conditional lines, $NAME parameter
// definitions and substitution, ~SEQ and ~LST sequence lines. It knows no
// keyword: every line becomes a [Node] (a keyword, its arguments and an
// optional { } block), unknown keywords included, and the caller (the mapping
// onto govs's configuration model) decides what each means and what to warn
// about. Every node, argument and error carries a [Position] (file, line,
// column) that points into the file the text came from, also through include
// and through $NAME substitution (there it is the place of the $NAME).
//
// Usage:
//
//	f, err := keepalived.ParseFile("/etc/keepalived/keepalived.conf", keepalived.Options{})
//	if err != nil {
//		// err is an ErrorList: one "file:line:col: message" per problem
//	}
//	for _, vs := range f.All("virtual_server") {
//		algo := vs.Child("lb_algo").Arg(0)
//		...
//	}
//
// # The grammar, as keepalived reads it
//
//   - A line is split into words at blanks. A word that starts with a double
//     quote runs to the next double quote, which is removed, with no escapes:
//     "a b" is one word a b; ab"c d" is two words, ab and c d. Single quotes
//     are ordinary characters.
//   - '#' and '!' start a comment anywhere outside double quotes; \# and \!
//     stand for the characters themselves.
//   - '{' and '}' outside double quotes are words of their own even when
//     written against other text (rr} is rr then }). A '{' opens the block of
//     the line before it, on the same line or a later one.
//   - A trailing backslash continues a line only inside a $NAME= definition;
//     elsewhere it stays part of the last word (a warning says so).
//   - include PATTERN (and includer, includem, includew, includeb, includea)
//     reads the files matching the glob PATTERN, with csh braces, relative to
//     the directory of the including file; the rest of the line is the pattern.
//     Blocks may open in one file and close in another, as in keepalived.
//   - @ID LINE keeps LINE only when ID is the config id; @^ID LINE only when it
//     is not.
//   - $NAME=VALUE defines a parameter (a trailing backslash makes a multi-line
//     one); $NAME (followed by a blank, ',', ')' or the end of the line) and
//     ${NAME} are replaced by its value, recursively, at the time of use. An
//     undefined $NAME stays as it is (scripts use $ too); an undefined ${NAME}
//     outside double quotes is an error, since keepalived would split its
//     braces into blocks. ${_PWD}, ${_INSTANCE}, ${_RANDOM [MIN [MAX]]},
//     ${_HASH} and ${_BANG} are predefined.
//   - ~SEQ(VAR, [START,] [STEP,] END), ~SEQx(...) and ~LST(VAR, V1, V2, ...)
//     or ~LST({V1, V2}, {a, b}, ...) repeat the rest of their line.
//
// Where govs is stricter than keepalived, it says so: an include of a plain
// file name that does not exist is an error (keepalived logs it and goes on),
// as are unbalanced braces, unterminated quotes, include loops, recursive
// parameters and blocks nested more than 64 deep. Parsing goes on after an
// error where it can, so that one run reports every problem.
//
// This package imports no other govs package.
package keepalived
