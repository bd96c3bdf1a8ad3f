// Package config owns zend's configuration: the Config struct and its TOML
// names (a public contract), the embedded defaults, loading a file strictly
// (unknown keys, wrong types and bad values are errors that name the file,
// the line, the key and what is allowed), the ZEND_* environment overrides
// and command-line overrides, and validation.
//
// Precedence is defaults < file < environment < command line. Package config
// imports no other zend package and has no side effects: it reads the file
// it is given and nothing else.
package config
