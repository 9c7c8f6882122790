// Package netaddr validates a node's "host:port" and gives its canonical
// form, for selector's node validation and the registries' duplicate checks.
package netaddr

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Canonical validates addr and returns the form two addresses of the
// same endpoint share: a lowercase host name ("Host:80" is "host:80") or an
// IP in its standard form ("[0:0::1]:80" is "[::1]:80").
func Canonical(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q does not parse as host:port: %w", addr, err)
	}
	if host == "" {
		return "", fmt.Errorf("address %q has no host", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || port[0] == '+' {
		return "", fmt.Errorf("address %q: port %q is not a number in 1..65535", addr, port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.String(), strconv.Itoa(p)), nil
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", fmt.Errorf("address %q: host %q is neither an IP address nor a DNS name (byte %q at %d)", addr, host, c, i)
		}
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(p)), nil
}
