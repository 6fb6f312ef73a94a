// go-http: the Go side of bench/http_compare. A hello-world net/http server on 127.0.0.1.
//
//	GO111MODULE=off go build -o go-http main.go
//	go-http [-port N]      (GOMAXPROCS from the environment, as usual)
//	-> prints "listening on 127.0.0.1:PORT" once it accepts connections
//
// The response matches bench/http_server.cpp: "Hello, World!\n" as text/plain; charset=utf-8,
// with Date and Content-Length (both added by net/http).
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
)

func main() {
	port := flag.Int("port", 8080, "port on 127.0.0.1")
	flag.Parse()
	body := []byte("Hello, World!\n")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(body)
	})
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s (GOMAXPROCS=%d)\n", ln.Addr(), runtime.GOMAXPROCS(0))
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
