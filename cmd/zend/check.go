package main

import (
	"fmt"
	"io"

	"zend/config"
	"zend/daemon"
)

// describe names where cfg came from.
func describe(cfg *config.Config) string {
	if cfg.Path == "" {
		return "(embedded defaults)"
	}
	return cfg.Path
}

// cmdCheck validates the configuration, checks what "zend start" needs
// from the system (daemon.Preflight), and prints the configuration with
// every default filled in, as "nginx -t" and "sshd -T" do. Exit 0 when
// both pass, 1 when not.
func cmdCheck(g *global, stdout, stderr io.Writer) error {
	if len(g.args) > 0 {
		return &exitError{code: 2, msg: "check takes no arguments, got " + g.args[0]}
	}
	cfg, err := g.source.Load()
	if err != nil {
		return err
	}
	// What start needs from the system: users, folders, addresses.
	if err := daemon.Preflight(cfg, true); err != nil {
		return fmt.Errorf("configuration %s is valid, but zend could not start with it:\n%w", describe(cfg), err)
	}
	if g.quiet {
		return nil
	}
	// Every key in force, the built-in answers included, as sshd -T
	// prints what sshd would use.
	eff := *cfg
	eff.Answers = daemon.AnswersInForce(cfg)
	if err := eff.WriteTOML(stdout); err != nil {
		return err
	}
	if cfg.Path == "" {
		fmt.Fprintf(stderr, "zend: %s does not exist; the embedded defaults above are valid\n", config.DefaultPath)
	} else {
		fmt.Fprintf(stderr, "zend: configuration %s is valid\n", cfg.Path)
	}
	return nil
}
