// Command yamuxpeer is the Go reference peer for agentgate's yamux interop test.
// It is built in GOPATH mode against Debian's golang-github-hashicorp-yamux-dev.
//
//	yamuxpeer client ADDR STREAMS BYTES  dial ADDR as the yamux client (as agents do), ping,
//	                                     open STREAMS streams at once, on each write BYTES,
//	                                     read the echo back and compare it, then half-close
//	yamuxpeer server ADDR                listen on ADDR (print the bound address), accept one
//	                                     connection as the yamux server and echo every stream,
//	                                     half-closing after the peer's FIN
//
// Results go to stdout as one JSON line; failures exit with status 1.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: yamuxpeer client ADDR STREAMS BYTES | server ADDR"))
	}
	var err error
	switch os.Args[1] {
	case "client":
		err = runClient(os.Args[2], atoi(os.Args[3]), atoi(os.Args[4]))
	case "server":
		err = runServer(os.Args[2])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func config() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = os.Stderr
	return cfg
}

// pattern gives each stream its own bytes, so a mix-up between streams is caught.
func pattern(seed, size int) []byte {
	out := make([]byte, size)
	x := uint32(seed*2654435761) | 1
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		out[i] = byte(x)
	}
	return out
}

func runClient(addr string, streams, size int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	session, err := yamux.Client(conn, config())
	if err != nil {
		return err
	}
	rtt, err := session.Ping()
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- echo(session, pattern(i, size))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	report(map[string]interface{}{"streams": streams, "bytes": size, "pingMs": rtt.Seconds() * 1000})
	return session.Close()
}

func echo(session *yamux.Session, data []byte) error {
	stream, err := session.OpenStream()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	writeErr := make(chan error, 1)
	go func() {
		_, err := stream.Write(data)
		writeErr <- err
	}()
	// This yamux (Debian's 2019 snapshot) makes Read return EOF once the stream is closed
	// locally and its buffer is momentarily empty, so read the whole echo before Close.
	got := make([]byte, len(data))
	if _, err := io.ReadFull(stream, got); err != nil {
		return fmt.Errorf("stream %d read: %w", stream.StreamID(), err)
	}
	if err := <-writeErr; err != nil {
		return fmt.Errorf("stream %d write: %w", stream.StreamID(), err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("stream %d: echo differs", stream.StreamID())
	}
	if err := stream.Close(); err != nil { // half-close: FIN; the Node side answers with its FIN
		return err
	}
	rest, err := ioutil.ReadAll(stream)
	if err != nil || len(rest) != 0 {
		return fmt.Errorf("stream %d: %d bytes after the echo (%v)", stream.StreamID(), len(rest), err)
	}
	return nil
}

func runServer(addr string) error {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println(listener.Addr().String())
	conn, err := listener.Accept()
	if err != nil {
		return err
	}
	listener.Close()
	session, err := yamux.Server(conn, config())
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	echoed, total := 0, 0
	for {
		stream, err := session.AcceptStream()
		if err != nil {
			break // the client closed the session
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := io.Copy(stream, stream)
			stream.Close()
			if err == nil {
				mu.Lock()
				echoed++
				total += int(n)
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("streams still open after the session ended")
	}
	report(map[string]interface{}{"echoed": echoed, "bytes": total})
	return nil
}

func report(result map[string]interface{}) {
	line, _ := json.Marshal(result)
	fmt.Println(string(line))
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(err)
	}
	return n
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "yamuxpeer:", err)
	os.Exit(1)
}
