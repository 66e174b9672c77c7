// Command tlsnode runs one dqlite node through go-dqlite's app package, over
// mutual TLS (with --cert and --key) or in plaintext (without them), for the
// dqlite-tests harness. It stays in the foreground until killed, logs to
// stderr, and reports the cluster state it sees on stdout as status lines:
//
//	tlsnode: status id=ID address=ADDR role=ROLE leader=ADDR voters=N standbys=N spares=N
//
// A line is printed whenever one of those values changes; "-" stands for
// unknown. With --links FILE (plaintext only), the node's outgoing connections
// to other nodes go through the addresses FILE names for each link, so that a
// test can cut, delay or restore each direction between two nodes on its own.
// See tests/nodes/README.md.
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
	"sync"
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
	var unixFront, links string
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
	flags.StringVar(&links, "links", "", "file of `FROM TO VIA` lines: this node (FROM = --db) reaches node TO by dialing VIA; plaintext only (see README)")
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
	if links != "" && certFile != "" {
		return fmt.Errorf("--links works in plaintext only")
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

	var linked net.Listener
	var engine string
	if links != "" {
		// The app package's external-connection mode: the engine listens on a
		// unix socket of its own, every connection to another node is made by
		// the dial function below, and this program accepts on --db.
		listener, err := net.Listen("tcp", db)
		if err != nil {
			return fmt.Errorf("listen to %s: %w", db, err)
		}
		defer listener.Close()
		linked = listener
		engine = fmt.Sprintf("@tlsnode-%d-engine", os.Getpid())
		options = append(options,
			app.WithUnixSocket(engine),
			app.WithExternalConn(linkedDial(db, links), make(chan net.Conn)))
		mode = "plaintext, links through " + links
	}

	node, err := app.New(dir, options...)
	if err != nil {
		return err
	}
	if linked != nil {
		go serveLinked(linked, engine)
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

// upgradeRequest opens a connection from another node; upgradeReply accepts it.
// The app package's external-connection mode expects this exchange (it writes
// the reply itself for connections handed to it; serveLinked writes it here).
const (
	upgradeRequest = "GET /dqlite HTTP/1.1\r\nUpgrade: dqlite\r\n\r\n"
	upgradeReply   = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: dqlite\r\n\r\n"
)

// handshakeTimeout bounds the upgrade exchange on either side.
const handshakeTimeout = 5 * time.Second

// linkedDial returns the dial function of a node with --links: a connection
// from this node (self) to node addr dials the VIA address that the links file
// names for the link (the file is read again at every dial, so the harness may
// rewrite it), and exchanges the upgrade request and reply. A connection to the
// node itself dials its own address. A link the file does not name is an error:
// nothing bypasses the harness.
func linkedDial(self, file string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		target := addr
		if addr != self {
			via, err := lookupLink(file, self, addr)
			if err != nil {
				return nil, err
			}
			target = via
		}
		dialer := net.Dialer{Timeout: handshakeTimeout}
		conn, err := dialer.DialContext(ctx, "tcp", target)
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(handshakeTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		conn.SetDeadline(deadline)
		if _, err := io.WriteString(conn, upgradeRequest); err != nil {
			conn.Close()
			return nil, fmt.Errorf("link to %s via %s: %w", addr, target, err)
		}
		head, err := readHead(conn)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("link to %s via %s: %w", addr, target, err)
		}
		if !strings.HasPrefix(head, "HTTP/1.1 101 ") {
			conn.Close()
			return nil, fmt.Errorf("link to %s via %s: refused: %q", addr, target, head)
		}
		conn.SetDeadline(time.Time{})
		return conn, nil
	}
}

// lookupLink finds the VIA address of the link from -> to in the links file.
func lookupLink(file, from, to string) (string, error) {
	data, err := ioutil.ReadFile(file)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 3 && fields[0] == from && fields[1] == to {
			return fields[2], nil
		}
	}
	return "", fmt.Errorf("no link from %s to %s in %s", from, to, file)
}

// readHead reads an upgrade request or reply up to its blank line, one byte at
// a time so that nothing after it is consumed; at most 1 KiB.
func readHead(conn net.Conn) (string, error) {
	var head []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if len(head) >= 1024 {
			return "", fmt.Errorf("upgrade header too long")
		}
		if _, err := io.ReadFull(conn, one); err != nil {
			return "", err
		}
		head = append(head, one[0])
	}
	return string(head), nil
}

// serveLinked accepts on the node's address for a node with --links: a
// connection that opens with the upgrade request comes from another node (or
// the node's own client code) and gets the upgrade reply; any other is a
// client speaking the dqlite protocol. Either is then forwarded to the engine's
// unix socket, from the same process (libdqlite accepts unix connections only
// from its own process).
func serveLinked(listener net.Listener, engine string) {
	for {
		conn, err := listener.Accept()
		if err != nil {
			log.Printf("links listener: %v", err)
			return
		}
		go routeLinked(conn, engine)
	}
}

func routeLinked(conn net.Conn, engine string) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(handshakeTimeout))
	first := make([]byte, 4)
	if _, err := io.ReadFull(conn, first); err != nil {
		return
	}
	if string(first) == upgradeRequest[:4] {
		if _, err := readHead(conn); err != nil {
			return
		}
		conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
		if _, err := io.WriteString(conn, upgradeReply); err != nil {
			return
		}
		first = nil
	}
	conn.SetDeadline(time.Time{})
	local, err := net.DialTimeout("unix", engine, handshakeTimeout)
	if err != nil {
		log.Printf("links listener: dial engine %s: %v", engine, err)
		return
	}
	defer local.Close()
	if _, err := local.Write(first); err != nil {
		return
	}
	pipe(conn, local)
}

// pipe copies both ways until either side closes, then closes both.
func pipe(a, b net.Conn) {
	var once sync.Once
	closeBoth := func() { a.Close(); b.Close() }
	done := make(chan struct{}, 2)
	go func() { io.Copy(a, b); once.Do(closeBoth); done <- struct{}{} }()
	go func() { io.Copy(b, a); once.Do(closeBoth); done <- struct{}{} }()
	<-done
	<-done
}
