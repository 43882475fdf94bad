package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// credentials are the CA, server and client certificates a Server makes at start.
type credentials struct {
	caPEM         []byte
	serverCert    tls.Certificate
	clientCredPEM []byte // client key then certificate, as ~/.xcat/client-cred.pem
	pool          *x509.CertPool
}

func newCredentials(clientUser string) (*credentials, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "xcatbm-sim CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("ca cert: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     []string{"localhost"},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		return der, key, err
	}
	srvDER, srvKey, err := issue(2, "xcatbm-sim", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, fmt.Errorf("server cert: %w", err)
	}
	cliDER, cliKey, err := issue(3, clientUser, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, fmt.Errorf("client cert: %w", err)
	}
	keyPEM := func(k *ecdsa.PrivateKey) ([]byte, error) {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	}
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	srvKeyPEM, err := keyPEM(srvKey)
	if err != nil {
		return nil, err
	}
	serverCert, err := tls.X509KeyPair(certPEM(srvDER), srvKeyPEM)
	if err != nil {
		return nil, err
	}
	cliKeyPEM, err := keyPEM(cliKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &credentials{
		caPEM:         certPEM(caDER),
		serverCert:    serverCert,
		clientCredPEM: append(cliKeyPEM, certPEM(cliDER)...),
		pool:          pool,
	}, nil
}

// write puts ca.pem and client-cred.pem into dir, as xCAT keeps them in ~/.xcat.
func (c *credentials) write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), c.caPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "client-cred.pem"), c.clientCredPEM, 0o600)
}

// serverTLS requests a client certificate but does not require one, as xcatd does.
func (c *credentials) serverTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    c.pool,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLSConfig builds the TLS configuration xCAT's client uses from a credential
// directory holding ca.pem and client-cred.pem (key and certificate concatenated): the
// server's certificate is verified against the CA without a host name check. It returns
// an error when the files are missing or unreadable.
func ClientTLSConfig(dir string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("xcat credentials: %w", err)
	}
	credPEM, err := os.ReadFile(filepath.Join(dir, "client-cred.pem"))
	if err != nil {
		return nil, fmt.Errorf("xcat credentials: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("xcat credentials: ca.pem holds no certificate")
	}
	cert, err := tls.X509KeyPair(credPEM, credPEM)
	if err != nil {
		return nil, fmt.Errorf("xcat credentials: client-cred.pem: %w", err)
	}
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified below against the CA, without host names
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("xcatd sent no certificate")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(c)
				}
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
			return err
		},
	}, nil
}
