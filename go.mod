module zend

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/pires/go-proxyproto v0.15.0
	github.com/sevlyar/go-daemon v0.1.6
	golang.org/x/sys v0.50.0
	gopkg.in/natefinch/lumberjack.v2 v2.2.1
)

require github.com/kardianos/osext v0.0.0-20190222173326-2bc1f35cddc0 // indirect
