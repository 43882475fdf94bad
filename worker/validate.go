package worker

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"xcatbm/messages"
)

// Tenant input reaches xCAT in postscript arguments (hostname, addresses), node
// attributes (ip) and job rows (the instance uuid). xCAT splits postscript lists at
// commas and hands arguments to shell scripts, so every such value is checked before
// the first xCAT request of a job, and a bad one fails the job with a clear fault:
// nothing is dropped silently.

// ErrBadInput is the error of a job whose request carries a value that must not
// reach xCAT.
var ErrBadInput = errors.New("invalid request")

// ErrRefused is the error of a job that asks for what xcatbm does not do (keep the
// ephemeral disk on rebuild, evacuate, rescue where none is configured).
var ErrRefused = errors.New("not supported")

// checkUUID accepts nova's instance uuids: 32 hex digits in the 8-4-4-4-12 form.
func checkUUID(s string) error {
	if len(s) != 36 {
		return fmt.Errorf("%w: instance uuid %q is not a UUID", ErrBadInput, s)
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return fmt.Errorf("%w: instance uuid %q is not a UUID", ErrBadInput, s)
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return fmt.Errorf("%w: instance uuid %q is not a UUID", ErrBadInput, s)
			}
		}
	}
	return nil
}

// checkHostname accepts an RFC 1123 host name: dot-separated labels of letters,
// digits and '-', 1 to 63 characters each, not starting or ending with '-', 253
// characters at most.
func checkHostname(h string) error {
	bad := func(why string) error { return fmt.Errorf("%w: hostname %q %s", ErrBadInput, h, why) }
	if h == "" || len(h) > 253 {
		return bad("must be 1 to 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return bad("has a label that is empty or longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return bad("has a label starting or ending with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return bad(fmt.Sprintf("holds %q: only letters, digits, '-' and '.' are allowed", c))
			}
		}
	}
	return nil
}

// checkIPv4 accepts a dotted-quad IPv4 address, and, with mask set, a contiguous
// netmask.
func checkIPv4(what, s string, mask bool) error {
	ip := net.ParseIP(s)
	if ip == nil || ip.To4() == nil || strings.Contains(s, ":") {
		return fmt.Errorf("%w: %s %q is not an IPv4 address", ErrBadInput, what, s)
	}
	if mask {
		if ones, bits := net.IPMask(ip.To4()).Size(); bits == 0 || ones == 0 {
			return fmt.Errorf("%w: %s %q is not a netmask", ErrBadInput, what, s)
		}
	}
	return nil
}

// checkRequest checks every value of a job's request that reaches xCAT. It runs in
// resolve, before the job's first xCAT request.
func checkRequest(r *run) error {
	if r.req.Refused != "" {
		return fmt.Errorf("%w: %s", ErrRefused, r.req.Refused)
	}
	if r.req.AddressError != "" {
		return fmt.Errorf("%w: %s", ErrBadInput, r.req.AddressError)
	}
	if r.req.InstanceUUID != "" || spec(r.kind()).nova.event != "" {
		if err := checkUUID(r.req.InstanceUUID); err != nil {
			return err
		}
	}
	if r.req.Hostname != "" {
		if err := checkHostname(r.req.Hostname); err != nil {
			return err
		}
	}
	if r.req.IP != "" {
		if err := checkIPv4("tenant IP", r.req.IP, false); err != nil {
			return err
		}
		if r.req.Netmask != "" {
			if err := checkIPv4("tenant netmask", r.req.Netmask, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// tenantAddress picks the tenant IPv4 address, netmask and MAC from the instance's
// network info (nova's network_info: the first fixed IPv4 address of an IPv4
// subnet), else from the requested networks' fixed addresses. A fixed address or
// subnet that does not parse is an error: it is never skipped in favour of the next.
func tenantAddress(inst *messages.Instance, nets []messages.NetworkRequest) (ip, mask, mac string, err error) {
	for _, vif := range inst.NetworkInfo {
		if mac == "" {
			mac = vif.Address
		}
		for _, sn := range vif.Network.Subnets {
			if len(sn.IPs) == 0 {
				continue
			}
			_, cidr, perr := net.ParseCIDR(sn.CIDR)
			if perr != nil {
				return "", "", mac, fmt.Errorf("subnet %q of port %s is not a CIDR", sn.CIDR, vif.ID)
			}
			if cidr.IP.To4() == nil {
				continue // IPv6: the postscript configures IPv4 only
			}
			for _, fip := range sn.IPs {
				a := net.ParseIP(fip.Address)
				if a == nil || a.To4() == nil || strings.Contains(fip.Address, ":") {
					return "", "", mac, fmt.Errorf("fixed IP %q of port %s is not an IPv4 address in %s", fip.Address, vif.ID, sn.CIDR)
				}
				if ip == "" {
					ip, mask, mac = a.String(), net.IP(cidr.Mask).String(), vif.Address
				}
			}
		}
	}
	if ip != "" {
		return ip, mask, mac, nil
	}
	for _, n := range nets {
		if n.Address == "" {
			continue
		}
		a := net.ParseIP(n.Address)
		if a == nil {
			return "", "", mac, fmt.Errorf("requested address %q is not an IP address", n.Address)
		}
		if a4 := a.To4(); a4 != nil && ip == "" {
			ip = a4.String()
		}
	}
	return ip, mask, mac, nil
}
