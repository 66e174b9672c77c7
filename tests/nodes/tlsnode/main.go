// Command tlsnode runs one dqlite node through go-dqlite's app package, over
// mutual TLS (with --cert and --key) or in plaintext (without them), for the
// dqlite-tests harness. It stays in the foreground until killed, logs to
// stderr, and reports the cluster state it sees on stdout as status lines:
//
//	tlsnode: status id=ID address=ADDR role=ROLE leader=ADDR voters=N standbys=N spares=N
//
// A line is printed whenever one of those values changes; "-" stands for
// unknown. See tests/nodes/README.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/canonical/go-dqlite/app"
	"github.com/canonical/go-dqlite/client"
)

func main() {
	log.SetOutput(os.Stderr)
	log.SetPrefix("tlsnode: ")
	if err := run(); err != nil {
		log.Printf("error: %v", err)
		os.Exit(1)
	}
}

func run() error {
	var db, dir, join, certFile, keyFile, caFile, api string
	var unixFront string
	var verbose, tickets bool
	var voters int
	flags := flag.NewFlagSet("tlsnode", flag.ContinueOnError)
	flags.StringVar(&db, "db", "", "this node's address, HOST:PORT (@NAME, an abstract unix socket, works in plaintext for a single node only: libdqlite serves no other process there)")
	flags.StringVar(&db, "d", "", "shorthand for --db")
	flags.StringVar(&dir, "D", "", "data directory (created if missing)")
	flags.StringVar(&dir, "dir", "", "same as -D")
	flags.StringVar(&join, "join", "", "comma-separated addresses of nodes to join; empty: bootstrap a new cluster")
	flags.StringVar(&join, "j", "", "shorthand for --join")
	flags.StringVar(&certFile, "cert", "", "PEM cluster certificate; enables TLS (needs --key)")
	flags.StringVar(&keyFile, "key", "", "PEM private key of the cluster certificate")
	flags.StringVar(&caFile, "ca", "", "PEM certificates to trust (default: the cluster certificate itself)")
	flags.StringVar(&api, "api", "", "accepted for command-line compatibility with dqlite-demo; unused")
	flags.StringVar(&unixFront, "unix", "", "also serve clients, in plaintext, on this unix socket: a path or @NAME (abstract)")
	flags.BoolVar(&tickets, "session-tickets", false, "let the TLS listener issue session tickets (go-dqlite's default; fails with Go 1.19, see README)")
	flags.IntVar(&voters, "voters", 3, "target number of voters (odd, at least 3)")
	flags.BoolVar(&verbose, "v", false, "log debug and info messages of go-dqlite too")
	if err := flags.Parse(os.Args[1:]); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", flags.Args())
	}
	if db == "" || dir == "" {
		return fmt.Errorf("--db and -D are required")
	}
	if (certFile == "") != (keyFile == "") {
		return fmt.Errorf("--cert and --key go together")
	}
	if caFile != "" && certFile == "" {
		return fmt.Errorf("--ca needs --cert and --key")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}

	logFunc := func(l client.LogLevel, format string, a ...interface{}) {
		if l < client.LogWarn && !verbose {
			return
		}
		log.Printf("%s: %s", l.String(), fmt.Sprintf(format, a...))
	}
	options := []app.Option{
		app.WithAddress(db),
		app.WithLogFunc(logFunc),
		app.WithVoters(voters),
	}
	if join != "" {
		options = append(options, app.WithCluster(strings.Split(join, ",")))
	}
	mode := "plaintext"
	var tlsDial *tls.Config
	if certFile != "" {
		listen, dial, err := tlsConfigs(certFile, keyFile, caFile)
		if err != nil {
			return err
		}
		// Without this, resumed TLS 1.3 handshakes between the nodes fail
		// ("tls: invalid PSK binder", "bad record MAC") and no cluster forms.
		listen.SessionTicketsDisabled = !tickets
		tlsDial = dial
		options = append(options, app.WithTLS(listen, dial))
		mode = "tls"
		// With TLS, the app package binds the dqlite engine to the abstract
		// unix socket @dqlite-<node ID> (behind its TLS proxy), and every
		// bootstrap node has the same ID: two clusters on one machine would
		// clash. The package makes the name unique per SNAP_INSTANCE_NAME,
		// so give every process its own.
		if os.Getenv("SNAP_INSTANCE_NAME") == "" {
			os.Setenv("SNAP_INSTANCE_NAME", fmt.Sprintf("tlsnode-%d", os.Getpid()))
		}
	}

	node, err := app.New(dir, options...)
	if err != nil {
		return err
	}
	log.Printf("started %s node at %s (id %d, data %s)", mode, node.Address(), node.ID(), dir)
	if unixFront != "" {
		// A socket file left by a killed run would make the listen fail.
		if info, err := os.Lstat(unixFront); err == nil && info.Mode()&os.ModeSocket != 0 {
			os.Remove(unixFront)
		}
		listener, err := net.Listen("unix", unixFront)
		if err != nil {
			return fmt.Errorf("--unix: %w", err)
		}
		defer listener.Close()
		go serveUnix(listener, node.Address(), tlsDial)
		log.Printf("serving clients on unix socket %s", unixFront)
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		report(ctx, node)
	}()
	sig := <-signals
	log.Printf("%v: shutting down", sig)
	cancel()
	<-done
	handover, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := node.Handover(handover); err != nil {
		log.Printf("handover: %v", err)
	}
	return node.Close()
}

// tlsConfigs loads the cluster certificate and the pool to trust, and builds
// go-dqlite's standard listen and dial configurations from them.
func tlsConfigs(certFile, keyFile, caFile string) (*tls.Config, *tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load --cert %s and --key %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", certFile, err)
	}
	// SimpleDialTLSConfig panics without a DNS name; fail politely instead.
	if len(leaf.DNSNames) == 0 {
		return nil, nil, fmt.Errorf("%s has no DNS subject alternative name; go-dqlite dials its peers by the first one", certFile)
	}
	poolFile := certFile
	if caFile != "" {
		poolFile = caFile
	}
	data, err := ioutil.ReadFile(poolFile)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, nil, fmt.Errorf("no PEM certificate in %s", poolFile)
	}
	listen, dial := app.SimpleTLSConfig(cert, pool)
	return listen, dial, nil
}

// serveUnix forwards every connection accepted on listener to the node's own
// address, over TLS if dial is set. The dqlite engine itself accepts unix
// connections only from its own process (it checks SO_PEERCRED), so clients in
// other processes reach it over a unix socket only through a front like this.
func serveUnix(listener net.Listener, address string, dial *tls.Config) {
	for {
		conn, err := listener.Accept()
		if err != nil {
			log.Printf("unix front: %v", err)
			return
		}
		go func() {
			defer conn.Close()
			var upstream net.Conn
			var err error
			if dial != nil {
				upstream, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", address, dial)
			} else if strings.HasPrefix(address, "@") {
				upstream, err = net.DialTimeout("unix", address, 5*time.Second)
			} else {
				upstream, err = net.DialTimeout("tcp", address, 5*time.Second)
			}
			if err != nil {
				log.Printf("unix front: dial %s: %v", address, err)
				return
			}
			defer upstream.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(upstream, conn); done <- struct{}{} }()
			go func() { io.Copy(conn, upstream); done <- struct{}{} }()
			<-done
		}()
	}
}

// report prints a status line whenever the node's view of the cluster changes.
func report(ctx context.Context, node *app.App) {
	last := ""
	for {
		line := status(ctx, node)
		if line != last {
			fmt.Println(line)
			last = line
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// status asks the leader for the membership; unknown values are "-".
func status(ctx context.Context, node *app.App) string {
	role, leader := "-", "-"
	counts := map[client.NodeRole]int{}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if cli, err := node.Leader(ctx); err == nil {
		defer cli.Close()
		if info, err := cli.Leader(ctx); err == nil && info != nil && info.Address != "" {
			leader = info.Address
		}
		if nodes, err := cli.Cluster(ctx); err == nil {
			for _, n := range nodes {
				counts[n.Role]++
				if n.ID == node.ID() {
					role = strings.ToLower(n.Role.String())
				}
			}
		}
	}
	if leader == "-" {
		counts = map[client.NodeRole]int{}
	}
	return fmt.Sprintf("tlsnode: status id=%d address=%s role=%s leader=%s voters=%d standbys=%d spares=%d",
		node.ID(), node.Address(), role, leader,
		counts[client.Voter], counts[client.StandBy], counts[client.Spare])
}
