// criversion calls /runtime.v1.RuntimeService/Version on a CRI socket the way
// kubelet 1.28 dials its runtime: grpc.Dial with the bare socket path as the
// target and a unix dialer, so grpc-go sends the path itself as the HTTP/2
// :authority (the client Bun's HTTP/2 server used to reset with PROTOCOL_ERROR).
//
// It needs no generated CRI code: a codec registered as "proto" passes raw bytes,
// the request is encoded by hand and the response's runtime_name is read out of
// the protobuf bytes. Prints the runtime name; exits 1 with the error otherwise.
//
// Builds in GOPATH mode against Debian's golang-google-grpc-dev:
//   GO111MODULE=off GOPATH=$tmp:/usr/share/gocode go build -o criversion .
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// rawCodec replaces the proto codec: messages are *[]byte, sent and received as is.
// Registered under "proto", so the content-type stays "application/grpc" as kubelet's.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: criversion /path/to/cri.sock")
		os.Exit(2)
	}
	socket := os.Args[1]
	encoding.RegisterCodec(rawCodec{})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// As kubelet 1.28 (pkg/kubelet/cri/remote): the address is the bare path and the
	// dialer ignores the scheme-less target's resolution.
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", addr)
	}
	conn, err := grpc.DialContext(ctx, socket, grpc.WithInsecure(), grpc.WithBlock(), grpc.WithContextDialer(dialer))
	if err != nil {
		fail(err)
	}
	defer conn.Close()

	req := []byte{0x0a, 0x02, 'v', '1'} // VersionRequest{version: "v1"}
	var resp []byte
	if err := conn.Invoke(ctx, "/runtime.v1.RuntimeService/Version", &req, &resp); err != nil {
		fail(err)
	}
	name, err := stringField(resp, 2) // VersionResponse.runtime_name
	if err != nil {
		fail(err)
	}
	fmt.Println(name)
}

// stringField finds a length-delimited field in protobuf bytes (other fields skipped).
func stringField(b []byte, field uint64) (string, error) {
	for len(b) > 0 {
		key, n := uvarint(b)
		if n <= 0 {
			return "", errors.New("bad varint")
		}
		b = b[n:]
		switch key & 7 {
		case 0:
			_, n = uvarint(b)
			if n <= 0 {
				return "", errors.New("bad varint")
			}
			b = b[n:]
		case 2:
			l, n := uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return "", errors.New("bad length")
			}
			if key>>3 == field {
				return string(b[n : n+int(l)]), nil
			}
			b = b[n+int(l):]
		default:
			return "", fmt.Errorf("unexpected wire type %d", key&7)
		}
	}
	return "", fmt.Errorf("field %d not found", field)
}

func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "criversion:", err)
	os.Exit(1)
}
