// criunary measures unary CRI latency the way a kubelet sees it: one long-lived
// grpc-go connection dialed as kubelet 1.28 dials (bare socket path, unix dialer),
// sequential calls, the first `warmup` of each method discarded. Both runtimes are
// measured with this same client, so client-side costs cancel out of the ratio.
//
//	criunary /path/to/cri.sock N WARMUP
//
// Prints one JSON object: per method, n and the median/p90/min/max in microseconds.
// Like test/go/criversion it needs no generated CRI code (raw-bytes codec) and
// builds in GOPATH mode against Debian's golang-google-grpc-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o criunary .
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// rawCodec replaces the proto codec: messages are *[]byte, sent and received as is.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*v.(*[]byte) = append((*v.(*[]byte))[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

type method struct {
	name string
	path string
	req  []byte
}

type summary struct {
	N        int     `json:"n"`
	MedianUs float64 `json:"medianUs"`
	P90Us    float64 `json:"p90Us"`
	MinUs    float64 `json:"minUs"`
	MaxUs    float64 `json:"maxUs"`
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: criunary /path/to/cri.sock N WARMUP")
		os.Exit(2)
	}
	socket := os.Args[1]
	n, err1 := strconv.Atoi(os.Args[2])
	warmup, err2 := strconv.Atoi(os.Args[3])
	if err1 != nil || err2 != nil || n < 1 || warmup < 0 {
		fail(fmt.Errorf("N and WARMUP must be integers, N >= 1"))
	}
	encoding.RegisterCodec(rawCodec{})

	dialCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", addr)
	}
	conn, err := grpc.DialContext(dialCtx, socket, grpc.WithInsecure(), grpc.WithBlock(), grpc.WithContextDialer(dialer))
	if err != nil {
		fail(err)
	}
	defer conn.Close()

	methods := []method{
		{"Version", "/runtime.v1.RuntimeService/Version", []byte{0x0a, 0x02, 'v', '1'}}, // VersionRequest{version: "v1"}
		{"ListPodSandbox", "/runtime.v1.RuntimeService/ListPodSandbox", []byte{}},       // no filter
	}
	out := map[string]summary{}
	for _, m := range methods {
		samples := make([]float64, 0, n)
		var resp []byte
		for i := 0; i < warmup+n; i++ {
			req := m.req
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t0 := time.Now()
			err := conn.Invoke(ctx, m.path, &req, &resp)
			d := time.Since(t0)
			cancel()
			if err != nil {
				fail(fmt.Errorf("%s: %w", m.name, err))
			}
			if i >= warmup {
				samples = append(samples, float64(d.Nanoseconds())/1e3)
			}
		}
		out[m.name] = summarize(samples)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

// summarize: nearest-rank-interpolated percentiles, as test/bench/stats.ts computes them.
func summarize(s []float64) summary {
	sort.Float64s(s)
	pct := func(p float64) float64 {
		rank := p / 100 * float64(len(s)-1)
		lo := int(rank)
		hi := lo
		if float64(lo) < rank {
			hi = lo + 1
		}
		return s[lo] + (s[hi]-s[lo])*(rank-float64(lo))
	}
	return summary{N: len(s), MedianUs: pct(50), P90Us: pct(90), MinUs: s[0], MaxUs: s[len(s)-1]}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "criunary:", err)
	os.Exit(1)
}
