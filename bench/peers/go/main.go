// Command gobench runs the dqlite-bench workloads with the reference Go client
// (go-dqlite's database/sql driver) against an existing cluster and prints one JSON line.
//
// Usage: gobench -cluster A,B,C [-workloads abcde] [-tls CERT,KEY] [-failover-writer STOPFILE]
// The tables are those dqlite-bench creates (run it first against the same cluster).
// With -tls, it speaks mutual TLS as go-dqlite's app.SimpleDialTLSConfig sets it up: the
// cluster certificate is both the client certificate and the only trusted root.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/canonical/go-dqlite/client"
	"github.com/canonical/go-dqlite/driver"
)

const bigRows = 100000

// Workload c runs this many times in a row; its figures are the medians.
const cRuns = 15

// Workload e runs this many times in a row; its figure is the median.
const eRuns = 5

var registered = 0

// goDqliteVersion is the go-dqlite version the peer was built against, set at build time
// (-ldflags "-X main.goDqliteVersion=..."; bench/peers/lib.sh and bench/peers/go/setup3.sh
// do) and reported as go_dqlite_version so that bench/peers/summarize.py can tell the peers
// apart. The import paths are the same for 1.11.x and 3.0.x in GOPATH mode: Go reads the
// /v3 imports inside go-dqlite 3 as its unversioned directory (go.mod says module .../v3).
var goDqliteVersion = ""

// tlsConfig is the client's TLS configuration when -tls is given.
var tlsConfig *tls.Config

// loadTLS reads the cluster certificate and key into tlsConfig, with the settings of
// go-dqlite's app.SimpleDialTLSConfig (which needs the cgo engine, so it is not imported).
func loadTLS(spec string) {
	files := strings.Split(spec, ",")
	if len(files) != 2 {
		fail(fmt.Errorf("-tls takes CERT,KEY"))
	}
	cert, err := tls.LoadX509KeyPair(files[0], files[1])
	if err != nil {
		fail(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	tlsConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            pool,
		Certificates:       []tls.Certificate{cert},
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
	}
	if len(leaf.DNSNames) > 0 {
		tlsConfig.ServerName = leaf.DNSNames[0]
	}
}

// open returns a database/sql handle whose driver knows the given nodes, in order.
func open(nodes []string) *sql.DB {
	store := client.NewInmemNodeStore()
	infos := make([]client.NodeInfo, len(nodes))
	for i, a := range nodes {
		infos[i] = client.NodeInfo{Address: a}
	}
	if err := store.Set(context.Background(), infos); err != nil {
		fail(err)
	}
	var options []driver.Option
	if tlsConfig != nil {
		options = append(options, driver.WithDialFunc(client.DialFuncWithTLS(client.DefaultDialFunc, tlsConfig)))
	}
	drv, err := driver.New(store, options...)
	if err != nil {
		fail(err)
	}
	registered++
	name := fmt.Sprintf("dqlite-%d", registered)
	sql.Register(name, drv)
	db, err := sql.Open(name, "bench")
	if err != nil {
		fail(err)
	}
	return db
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gobench:", err)
	os.Exit(1)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(v []time.Duration) time.Duration {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return percentile(v, 0.5)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1)*p + 0.5)
	return sorted[i]
}

func main() {
	cluster := flag.String("cluster", "", "node addresses, comma separated")
	workloads := flag.String("workloads", "abcde", "workloads to run")
	tlsFiles := flag.String("tls", "", "CERT,KEY: speak mutual TLS with this cluster certificate")
	stop := flag.String("failover-writer", "", "STOPFILE: run workload g's writer until STOPFILE exists")
	flag.Parse()
	transport := "tcp"
	if *tlsFiles != "" {
		loadTLS(*tlsFiles)
		transport = "tls"
	}
	nodes := strings.Split(*cluster, ",")
	if *stop != "" {
		failoverWriter(nodes, *stop)
		return
	}
	w := strings.ReplaceAll(*workloads, ",", "")
	out := []string{`"client":"go-dqlite"`, `"runtime":"go"`, fmt.Sprintf(`"transport":"%s"`, transport),
		fmt.Sprintf(`"go_version":"%s"`, runtime.Version())}
	if goDqliteVersion != "" {
		out = append(out, fmt.Sprintf(`"go_dqlite_version":"%s"`, goDqliteVersion))
	}
	num := func(k string, v float64) { out = append(out, fmt.Sprintf(`"%s":%.3f`, k, v)) }

	db := open(nodes)
	db.SetMaxOpenConns(1)
	if strings.Contains(w, "a") {
		lat := make([]time.Duration, 0, 2000)
		var x int64
		for i := 0; i < 2000; i++ {
			t := time.Now()
			if err := db.QueryRow("SELECT 1").Scan(&x); err != nil {
				fail(err)
			}
			lat = append(lat, time.Since(t))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		num("a_p50_us", float64(percentile(lat, 0.5))/1e3)
		num("a_p99_us", float64(percentile(lat, 0.99))/1e3)
	}
	if strings.Contains(w, "b") {
		if _, err := db.Exec("DROP TABLE IF EXISTS ins_go"); err != nil {
			fail(err)
		}
		if _, err := db.Exec("CREATE TABLE ins_go (id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB)"); err != nil {
			fail(err)
		}
		blob := make([]byte, 16)
		t := time.Now()
		tx, err := db.Begin()
		if err != nil {
			fail(err)
		}
		for i := 0; i < 10000; i++ {
			name := fmt.Sprintf("name number %08d", i)
			if _, err := tx.Exec("INSERT INTO ins_go VALUES (?, ?, ?, ?)", int64(i), name, float64(i)*0.25, blob); err != nil {
				fail(err)
			}
		}
		if err := tx.Commit(); err != nil {
			fail(err)
		}
		num("b_serial_ms", ms(time.Since(t)))
	}
	if strings.Contains(w, "c") {
		// Fifteen runs in a row; the figures are the medians.
		var walls, cpus []time.Duration
		for run := 0; run < cRuns; run++ {
			t, cpu := time.Now(), cpuTime()
			rows, err := db.Query("SELECT id, a, b, c FROM big WHERE id <= ?", bigRows)
			if err != nil {
				fail(err)
			}
			n := 0
			var id int64
			var a string
			var b float64
			var c []byte
			for rows.Next() {
				if err := rows.Scan(&id, &a, &b, &c); err != nil {
					fail(err)
				}
				n++
			}
			if err := rows.Err(); err != nil {
				fail(err)
			}
			rows.Close()
			if n != bigRows {
				fail(fmt.Errorf("fetched %d rows", n))
			}
			walls = append(walls, time.Since(t))
			cpus = append(cpus, cpuTime()-cpu)
		}
		num("c_wall_ms", ms(median(walls)))
		num("c_cpu_ms", ms(median(cpus)))
	}
	if strings.Contains(w, "d") {
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		t := time.Now()
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var x int64
				for i := 0; i < 250; i++ {
					if err := db.QueryRow("SELECT 1").Scan(&x); err != nil {
						fail(err)
					}
				}
			}()
		}
		wg.Wait()
		num("d_qps", 2000/time.Since(t).Seconds())
	}
	if strings.Contains(w, "h") {
		for _, tasks := range []int{64, 512} {
			contendedPool(nodes, tasks, num)
		}
	}
	if strings.Contains(w, "i") {
		bigBlob(db, num)
	}
	if strings.Contains(w, "j") {
		var times []time.Duration
		for run := 0; run < eRuns; run++ {
			t := time.Now()
			coldPool(nodes)
			times = append(times, time.Since(t))
		}
		num("j_cold_pool_ms", ms(median(times)))
	}
	if strings.Contains(w, "e") && len(nodes) > 1 {
		// The caller passes the follower first. Five runs; the figure is the median.
		var times []time.Duration
		for run := 0; run < eRuns; run++ {
			t := time.Now()
			db2 := open(nodes)
			var x int64
			if err := db2.QueryRow("SELECT 1").Scan(&x); err != nil {
				fail(err)
			}
			times = append(times, time.Since(t))
			db2.Close()
		}
		num("e_first_result_ms", ms(median(times)))
	}
	fmt.Println("{" + strings.Join(out, ",") + "}")
}

// contendedPool is workload h: tasks goroutines share a database/sql pool of 8 connections
// for 2 s, each taking a connection and running SELECT 1 in a loop.
func contendedPool(nodes []string, tasks int, num func(string, float64)) {
	db := open(nodes)
	defer db.Close()
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	warm := make([]*sql.Conn, 8)
	for i := range warm {
		c, err := db.Conn(context.Background())
		if err != nil {
			fail(err)
		}
		warm[i] = c
	}
	for _, c := range warm {
		c.Close()
	}
	const window = 2 * time.Second
	start := time.Now()
	waits := make([][]time.Duration, tasks)
	calls := make([][]time.Duration, tasks)
	var wg sync.WaitGroup
	for g := 0; g < tasks; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ctx := context.Background()
			var x int64
			for time.Since(start) < window {
				t := time.Now()
				c, err := db.Conn(ctx)
				if err != nil {
					fail(err)
				}
				waits[g] = append(waits[g], time.Since(t))
				if err := c.QueryRowContext(ctx, "SELECT 1").Scan(&x); err != nil {
					fail(err)
				}
				c.Close()
				calls[g] = append(calls[g], time.Since(t))
			}
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var allWaits, allCalls []time.Duration
	total, slowest := 0, -1
	for g := 0; g < tasks; g++ {
		allWaits = append(allWaits, waits[g]...)
		allCalls = append(allCalls, calls[g]...)
		total += len(calls[g])
		if slowest < 0 || len(calls[g]) < slowest {
			slowest = len(calls[g])
		}
	}
	sort.Slice(allWaits, func(i, j int) bool { return allWaits[i] < allWaits[j] })
	sort.Slice(allCalls, func(i, j int) bool { return allCalls[i] < allCalls[j] })
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	p := fmt.Sprintf("h%d_", tasks)
	num(p+"qps", float64(total)/elapsed.Seconds())
	num(p+"acquire_p50_us", us(percentile(allWaits, 0.5)))
	num(p+"acquire_p99_us", us(percentile(allWaits, 0.99)))
	num(p+"call_p50_us", us(percentile(allCalls, 0.5)))
	num(p+"call_p99_us", us(percentile(allCalls, 0.99)))
	mean := float64(total) / float64(tasks)
	fairness := 0.0
	if mean > 0 {
		fairness = float64(slowest) / mean
	}
	num(p+"fairness", fairness)
}

// bigBlob is workload i: a 10 MiB BLOB written and read back, five times.
func bigBlob(db *sql.DB, num func(string, float64)) {
	if _, err := db.Exec("DROP TABLE IF EXISTS blobs_go"); err != nil {
		fail(err)
	}
	if _, err := db.Exec("CREATE TABLE blobs_go (id INTEGER PRIMARY KEY, b BLOB)"); err != nil {
		fail(err)
	}
	const size = 10 << 20
	blob := make([]byte, size)
	for i := range blob {
		blob[i] = byte(i % 251)
	}
	var writes, reads []time.Duration
	for run := 0; run < eRuns; run++ {
		t := time.Now()
		if _, err := db.Exec("INSERT INTO blobs_go VALUES (?, ?)", int64(run), blob); err != nil {
			fail(err)
		}
		writes = append(writes, time.Since(t))
		t = time.Now()
		var back []byte
		if err := db.QueryRow("SELECT b FROM blobs_go WHERE id = ?", int64(run)).Scan(&back); err != nil {
			fail(err)
		}
		reads = append(reads, time.Since(t))
		if len(back) != size {
			fail(fmt.Errorf("blob came back with %d bytes", len(back)))
		}
	}
	mb := float64(size) / 1e6
	num("i_write_mb_s", mb/median(writes).Seconds())
	num("i_read_mb_s", mb/median(reads).Seconds())
}

// coldPool is one run of workload j: a new pool of 16 connections, all connected at once,
// and one query answered.
func coldPool(nodes []string) {
	db := open(nodes)
	defer db.Close()
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	conns := make([]*sql.Conn, 16)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := db.Conn(context.Background())
			if err != nil {
				fail(err)
			}
			if err := c.PingContext(context.Background()); err != nil {
				fail(err)
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	// On one of the 16: the pool has no room for another.
	var x int64
	if err := conns[0].QueryRowContext(context.Background(), "SELECT 1").Scan(&x); err != nil {
		fail(err)
	}
	for _, c := range conns {
		c.Close()
	}
}

// failoverWriter is workload g's writer, driven by dqlite-failover (bench/src/bin): one INSERT
// through database/sql every 10 ms until the stop file exists, as a light application load.
// It prints "ack NS" (Unix time in ns) for each acknowledged write and "error NS MESSAGE" for
// each failed one; a failed write is tried again after 1 ms.
func failoverWriter(nodes []string, stop string) {
	db := open(nodes)
	// The driver starts the writer on a cluster with a leader and three voters.
	if _, err := db.Exec("CREATE TABLE IF NOT EXISTS failover_go (id INTEGER PRIMARY KEY, v INTEGER)"); err != nil {
		fail(err)
	}
	for i := 0; ; {
		if _, err := os.Stat(stop); err == nil {
			return
		}
		_, err := db.Exec("INSERT INTO failover_go (v) VALUES (?)", int64(i))
		ns := time.Now().UnixNano()
		if err != nil {
			fmt.Printf("error %d %s\n", ns, strings.ReplaceAll(err.Error(), "\n", " "))
			time.Sleep(time.Millisecond)
			continue
		}
		i++
		fmt.Printf("ack %d\n", ns)
		time.Sleep(10 * time.Millisecond)
	}
}
