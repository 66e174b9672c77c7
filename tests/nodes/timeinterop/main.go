// Command timeinterop checks that dates and times cross between go-dqlite's database/sql
// driver and the Rust client, against a running cluster.
//
// Usage:
//
//	timeinterop -cluster A,B,C -db NAME write
//	timeinterop -cluster A,B,C -db NAME read TABLE
//
// write creates the table go_times (id INTEGER PRIMARY KEY, at DATETIME, day DATE) and
// inserts one row per value below, with time.Time parameters (NULL for the last), then prints
// one JSON line per row: {"id":N,"wrote":"RFC3339Nano"} (or "wrote":null).
//
// read selects every column of TABLE ordered by its first column, scans each value into an
// interface{} as database/sql hands it over, and prints one JSON line per value:
// {"row":N,"column":"NAME","kind":"time|string|int|float|bool|bytes|null","value":...},
// times as RFC3339Nano.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/canonical/go-dqlite/client"
	"github.com/canonical/go-dqlite/driver"
)

// The values written by "write", in id order; nil is NULL.
func goValues() []interface{} {
	ist := time.FixedZone("IST", 5*3600+30*60)
	return []interface{}{
		time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC),
		time.Date(2024, 2, 29, 18, 44, 15, 120000000, ist),
		time.Date(2024, 2, 29, 13, 14, 15, 0, time.FixedZone("GMT", 0)),
		time.Date(1999, 12, 31, 23, 59, 59, 1, time.FixedZone("", -7*3600)),
		time.Time{},
		nil,
	}
}

func main() {
	cluster := flag.String("cluster", "", "comma-separated node addresses")
	database := flag.String("db", "interop", "database name")
	flag.Parse()
	if *cluster == "" || flag.NArg() == 0 {
		fail(fmt.Errorf("usage: timeinterop -cluster A,B,C -db NAME write | read TABLE"))
	}
	db := open(strings.Split(*cluster, ","), *database)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	switch flag.Arg(0) {
	case "write":
		write(ctx, db)
	case "read":
		if flag.NArg() != 2 {
			fail(fmt.Errorf("read needs a table name"))
		}
		read(ctx, db, flag.Arg(1))
	default:
		fail(fmt.Errorf("unknown mode %q", flag.Arg(0)))
	}
}

func open(nodes []string, database string) *sql.DB {
	store := client.NewInmemNodeStore()
	infos := make([]client.NodeInfo, len(nodes))
	for i, a := range nodes {
		infos[i] = client.NodeInfo{Address: a}
	}
	if err := store.Set(context.Background(), infos); err != nil {
		fail(err)
	}
	drv, err := driver.New(store)
	if err != nil {
		fail(err)
	}
	sql.Register("dqlite", drv)
	db, err := sql.Open("dqlite", database)
	if err != nil {
		fail(err)
	}
	return db
}

func write(ctx context.Context, db *sql.DB) {
	if _, err := db.ExecContext(ctx, "CREATE TABLE go_times (id INTEGER PRIMARY KEY, at DATETIME, day DATE)"); err != nil {
		fail(err)
	}
	out := json.NewEncoder(os.Stdout)
	for i, v := range goValues() {
		id := i + 1
		if _, err := db.ExecContext(ctx, "INSERT INTO go_times (id, at, day) VALUES (?, ?, ?)", id, v, v); err != nil {
			fail(err)
		}
		var wrote interface{}
		if t, ok := v.(time.Time); ok {
			wrote = t.Format(time.RFC3339Nano)
		}
		if err := out.Encode(map[string]interface{}{"id": id, "wrote": wrote}); err != nil {
			fail(err)
		}
	}
}

func read(ctx context.Context, db *sql.DB, table string) {
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %q ORDER BY 1", table))
	if err != nil {
		fail(err)
	}
	defer rows.Close()
	columns, err := rows.Columns()
	if err != nil {
		fail(err)
	}
	out := json.NewEncoder(os.Stdout)
	for n := 1; rows.Next(); n++ {
		values := make([]interface{}, len(columns))
		dest := make([]interface{}, len(columns))
		for i := range values {
			dest[i] = &values[i]
		}
		if err := rows.Scan(dest...); err != nil {
			fail(err)
		}
		for i, v := range values {
			kind, value := describe(v)
			line := map[string]interface{}{"row": n, "column": columns[i], "kind": kind, "value": value}
			if err := out.Encode(line); err != nil {
				fail(err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		fail(err)
	}
}

// describe names the Go type database/sql returned and gives the value in JSON terms.
func describe(v interface{}) (string, interface{}) {
	switch v := v.(type) {
	case nil:
		return "null", nil
	case time.Time:
		return "time", v.Format(time.RFC3339Nano)
	case string:
		return "string", v
	case int64:
		return "int", v
	case float64:
		return "float", v
	case bool:
		return "bool", v
	case []byte:
		return "bytes", v
	default:
		return fmt.Sprintf("%T", v), fmt.Sprint(v)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "timeinterop:", err)
	os.Exit(1)
}
