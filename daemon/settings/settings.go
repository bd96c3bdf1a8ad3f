// Package settings turns a zend configuration into the protocol's
// settings: the one mapping the daemon and the inetd binaries share. It
// imports config and protocol only.
package settings

import (
	"net/netip"

	"zend/config"
	"zend/protocol"
)

// From turns the reloadable part of cfg into protocol settings. cfg
// is validated: its prefixes parse.
func From(cfg *config.Config) protocol.Settings {
	prefixes := func(list []string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range list {
			if p, err := config.ParsePrefix(s); err == nil {
				out = append(out, p)
			}
		}
		return out
	}
	var access *protocol.Access
	if len(cfg.Access.Allow)+len(cfg.Access.Deny) > 0 {
		access = &protocol.Access{Allow: prefixes(cfg.Access.Allow), Deny: prefixes(cfg.Access.Deny)}
	}
	return protocol.Settings{
		Access:      access,
		Proxy:       protocol.Proxy{Enabled: cfg.Server.ProxyProtocol, Trusted: prefixes(cfg.Server.ProxyTrusted)},
		Answers:     protocol.NewAnswers(cfg.Answers),
		AnswerDelay: cfg.Server.AnswerDelay.D(),
		Limits: protocol.Limits{
			MaxConnections:   cfg.Limits.MaxConnections,
			MaxQuestionBytes: cfg.Limits.MaxQuestionBytes,
			IdleTimeout:      cfg.Limits.IdleTimeout.D(),
			QuestionTimeout:  cfg.Limits.QuestionTimeout.D(),
			WriteTimeout:     cfg.Limits.WriteTimeout.D(),

			MaxConnectionsPerIP: cfg.Limits.MaxConnectionsPerIP,
			AcceptRatePerIP:     cfg.Limits.AcceptRatePerIP,
			SendBuffer:          cfg.Limits.SendBuffer,
			IPv6Prefix:          cfg.Limits.IPv6Prefix,
		},
	}
}
