package main

import (
	"fmt"
	"io"

	"zend/config"
)

// cmdCheck validates the configuration and prints it with every default
// filled in, as "nginx -t" and "sshd -T" do. Exit 0 when valid, 1 when not.
func cmdCheck(g *global, stdout, stderr io.Writer) error {
	if len(g.args) > 0 {
		return &exitError{code: 2, msg: "check takes no arguments, got " + g.args[0]}
	}
	cfg, err := g.source.Load()
	if err != nil {
		return err
	}
	if g.quiet {
		return nil
	}
	if err := cfg.WriteTOML(stdout); err != nil {
		return err
	}
	if cfg.Path == "" {
		fmt.Fprintf(stderr, "zend: %s does not exist; the embedded defaults above are valid\n", config.DefaultPath)
	} else {
		fmt.Fprintf(stderr, "zend: configuration %s is valid\n", cfg.Path)
	}
	return nil
}
