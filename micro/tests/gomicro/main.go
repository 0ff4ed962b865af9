// Command gomicro-peer is real Go Micro on the other side of micro's interop
// tests: one binary, one subcommand per role. It is built by .ci/run (or by
// hand, see the README of micro/tests) and run by the Rust tests, inside the
// loopback-only network namespace.
//
//	gomicro-peer serve     --name helloworld [--address 127.0.0.1:0] [--registry mdns|memory|etcd] [--plain]
//	gomicro-peer call      --service S --endpoint E --body JSON [--address host:port] [--metadata k=v]... [--timeout 2s]
//	gomicro-peer publish   --topic T --body JSON [--linger 2s] [--broker http|nats]
//	gomicro-peer subscribe --name N --topic T [--queue Q] [--broker http|nats]
//	gomicro-peer get       --service S [--wait 10s] [--absent]
//	gomicro-peer stream    --address host:port --endpoint E --body JSON
//	gomicro-peer events-publish --nats URL --topic T --count N [--metadata k=v]...
//	gomicro-peer events-consume --nats URL --topic T --group G --count N [--ack-wait 5s] [--retry-limit n] [--timeout 20s]
//	gomicro-peer store-write [--backend postgres|redis] --database D --table T --key K [--value V] [--metadata k=v]... [--ttl 1m] [--dsn URL | --address URL]
//	gomicro-peer store-read  [--backend postgres|redis] --database D --table T --key K [--prefix] [--list] [--dsn URL | --address URL]
//	gomicro-peer cache-put    --key K [--value V] [--ttl 0] [--address URL]
//	gomicro-peer cache-get    --key K [--address URL]
//	gomicro-peer cache-delete --key K [--address URL]
//
// serve prints "LISTENING host:port" once registered; call prints one JSON
// line, {"ok":true,"body":...} or {"ok":false,"error":{...}}; subscribe prints
// "SUBSCRIBED" once registered, then one JSON line per message; get prints
// the registry's records of the service as one JSON line, once it has any
// (or [] once the wait is over). The events-* commands and their output are
// described in events.go, the store-* commands (Go Micro v5's core
// PostgreSQL store, or the v4 redis store plugin) in store.go, the cache-*
// commands (Go Micro v5's core Redis cache) in cache.go.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	natsbroker "github.com/go-micro/plugins/v4/broker/nats"
	etcd "github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: gomicro-peer serve|call|publish|subscribe|get|stream|events-publish|events-consume|store-write|store-read|cache-put|cache-get|cache-delete [flags]")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		serve(args)
	case "call":
		call(args)
	case "publish":
		publish(args)
	case "subscribe":
		subscribe(args)
	case "get":
		get(args)
	case "stream":
		streamCall(args)
	case "events-publish":
		eventsPublish(args)
	case "events-consume":
		eventsConsume(args)
	case "store-write":
		storeWrite(args)
	case "store-read":
		storeRead(args)
	case "cache-put":
		cachePut(args)
	case "cache-get":
		cacheGet(args)
	case "cache-delete":
		cacheDelete(args)
	case "config":
		configCmd(args)
	case "config-etcd":
		configEtcd(args)
	case "auth-verify":
		authVerify(args)
	default:
		fail("unknown subcommand " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(2)
}

// pairs is a repeatable k=v flag.
type pairs map[string]string

func (p pairs) String() string { return fmt.Sprint(map[string]string(p)) }
func (p pairs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want k=v, got %q", v)
	}
	p[k] = val
	return nil
}

// chooseRegistry is the registry named: mdns, memory, or etcd at the
// comma-separated addresses of MICRO_TEST_ETCD_ENDPOINTS.
func chooseRegistry(name string) registry.Registry {
	switch name {
	case "", "mdns":
		return registry.NewRegistry()
	case "memory":
		return registry.NewMemoryRegistry()
	case "etcd":
		var addrs []string
		for _, a := range strings.Split(os.Getenv("MICRO_TEST_ETCD_ENDPOINTS"), ",") {
			addrs = append(addrs, strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://"))
		}
		return etcd.NewRegistry(registry.Addrs(addrs...))
	}
	fail("unknown registry " + name)
	return nil
}

// chooseBroker is the broker named: http (Go Micro's default), or nats at
// MICRO_TEST_NATS_URL.
func chooseBroker(name string, r registry.Registry) broker.Broker {
	switch name {
	case "", "http":
		return broker.NewBroker(broker.Registry(r))
	case "nats":
		return natsbroker.NewBroker(broker.Addrs(os.Getenv("MICRO_TEST_NATS_URL")))
	}
	fail("unknown broker " + name)
	return nil
}

// Request and Response are the helloworld messages.
type Request struct {
	Name string `json:"name"`
	// Code, for Fail: the error code to answer with.
	Code int32 `json:"code,omitempty"`
	// Sleep, for Greeting: how long to take first, in milliseconds.
	Sleep int64 `json:"sleep_ms,omitempty"`
}

type Response struct {
	Message string `json:"message"`
	// Metadata is what the handler's context carries.
	Metadata map[string]string `json:"metadata,omitempty"`
	// DeadlineMs is the time left before the call's deadline, if it has one.
	DeadlineMs int64 `json:"deadline_ms,omitempty"`
}

// Helloworld is the service micro calls.
type Helloworld struct {
	// plain leaves out the report of metadata and deadline: the benchmark's echo.
	plain bool
}

// Greeting says hello, and reports the metadata and deadline it saw.
func (h *Helloworld) Greeting(ctx context.Context, req *Request, rsp *Response) error {
	if req.Sleep > 0 {
		time.Sleep(time.Duration(req.Sleep) * time.Millisecond)
	}
	rsp.Message = "Hello " + req.Name
	if h.plain {
		return nil
	}
	if md, ok := metadata.FromContext(ctx); ok {
		rsp.Metadata = map[string]string(md)
	}
	if deadline, ok := ctx.Deadline(); ok {
		rsp.DeadlineMs = time.Until(deadline).Milliseconds()
	}
	return nil
}

// Fail answers with an error of the code asked for.
func (h *Helloworld) Fail(ctx context.Context, req *Request, rsp *Response) error {
	return errors.New("helloworld", "failed as asked: "+req.Name, req.Code)
}

// Echo streams back every message it receives, until the caller closes.
func (h *Helloworld) Echo(ctx context.Context, stream server.Stream) error {
	for {
		var msg json.RawMessage
		if err := stream.Recv(&msg); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := stream.Send(&msg); err != nil {
			return err
		}
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	name := fs.String("name", "helloworld", "service name")
	address := fs.String("address", "127.0.0.1:0", "listen address")
	reg := fs.String("registry", "mdns", "mdns, memory or etcd")
	version := fs.String("version", "latest", "service version")
	md := pairs{}
	fs.Var(md, "metadata", "service metadata k=v (repeatable)")
	plain := fs.Bool("plain", false, "Greeting answers the message only (the benchmark's echo)")
	_ = fs.Parse(args)
	var svc micro.Service
	svc = micro.NewService(
		micro.Name(*name),
		micro.Version(*version),
		micro.Address(*address),
		micro.Metadata(md),
		micro.Registry(chooseRegistry(*reg)),
		micro.AfterStart(func() error {
			fmt.Printf("LISTENING %s\n", svc.Server().Options().Address)
			return nil
		}),
	)
	if err := micro.RegisterHandler(svc.Server(), &Helloworld{plain: *plain}); err != nil {
		fail(err.Error())
	}
	if err := svc.Run(); err != nil {
		fail(err.Error())
	}
}

func call(args []string) {
	fs := flag.NewFlagSet("call", flag.ExitOnError)
	service := fs.String("service", "helloworld", "service to call")
	endpoint := fs.String("endpoint", "Helloworld.Greeting", "endpoint to call")
	body := fs.String("body", "{}", "request JSON")
	address := fs.String("address", "", "call this host:port instead of resolving")
	reg := fs.String("registry", "mdns", "mdns, memory or etcd")
	timeout := fs.Duration("timeout", 5*time.Second, "request timeout")
	retries := fs.Int("retries", 1, "retries after the first attempt")
	md := pairs{}
	fs.Var(md, "metadata", "call metadata k=v (repeatable)")
	_ = fs.Parse(args)
	svc := micro.NewService(micro.Registry(chooseRegistry(*reg)))
	ctx := metadata.NewContext(context.Background(), metadata.Metadata(md))
	req := svc.Client().NewRequest(*service, *endpoint, json.RawMessage(*body), client.WithContentType("application/json"))
	var rsp json.RawMessage
	opts := []client.CallOption{client.WithRequestTimeout(*timeout), client.WithRetries(*retries)}
	if *address != "" {
		opts = append(opts, client.WithAddress(*address))
	}
	err := svc.Client().Call(ctx, req, &rsp, opts...)
	printOutcome(rsp, err)
}

// printOutcome prints a call's outcome as one JSON line:
// {"ok":true,"body":...} or {"ok":false,"error":{...}}.
func printOutcome(body json.RawMessage, err error) {
	out := map[string]interface{}{"ok": err == nil}
	if err != nil {
		out["error"] = errors.Parse(err.Error())
	} else {
		out["body"] = body
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

func publish(args []string) {
	fs := flag.NewFlagSet("publish", flag.ExitOnError)
	topic := fs.String("topic", "events", "topic")
	body := fs.String("body", "{}", "message JSON")
	reg := fs.String("registry", "mdns", "mdns, memory or etcd")
	// Go Micro's HTTP broker delivers after Publish returns, on a goroutine
	// of its own: the process stays up this long for it to finish.
	linger := fs.Duration("linger", 2*time.Second, "how long to stay up after publishing")
	brk := fs.String("broker", "http", "http or nats")
	_ = fs.Parse(args)
	r := chooseRegistry(*reg)
	svc := micro.NewService(micro.Registry(r), micro.Broker(chooseBroker(*brk, r)))
	if err := svc.Client().Init(); err != nil {
		fail(err.Error())
	}
	if err := svc.Options().Broker.Connect(); err != nil {
		fail(err.Error())
	}
	msg := svc.Client().NewMessage(*topic, json.RawMessage(*body), client.WithMessageContentType("application/json"))
	if err := svc.Client().Publish(context.Background(), msg); err != nil {
		line, _ := json.Marshal(map[string]interface{}{"ok": false, "error": err.Error()})
		fmt.Println(string(line))
		os.Exit(1)
	}
	fmt.Println(`{"ok":true}`)
	time.Sleep(*linger)
}

// Received is what the subscriber prints of each message.
type Received struct {
	Topic  string            `json:"topic"`
	Header map[string]string `json:"header"`
	Body   json.RawMessage   `json:"body"`
}

func subscribe(args []string) {
	fs := flag.NewFlagSet("subscribe", flag.ExitOnError)
	name := fs.String("name", "listener", "service name")
	topic := fs.String("topic", "events", "topic")
	queue := fs.String("queue", "", "queue group")
	reg := fs.String("registry", "mdns", "mdns, memory or etcd")
	brk := fs.String("broker", "http", "http or nats")
	_ = fs.Parse(args)
	r := chooseRegistry(*reg)
	var svc micro.Service
	svc = micro.NewService(
		micro.Name(*name),
		micro.Address("127.0.0.1:0"),
		micro.Registry(r),
		micro.Broker(chooseBroker(*brk, r)),
		micro.AfterStart(func() error {
			fmt.Println("SUBSCRIBED")
			return nil
		}),
	)
	var opts []server.SubscriberOption
	if *queue != "" {
		opts = append(opts, server.SubscriberQueue(*queue))
	}
	handler := func(ctx context.Context, msg *json.RawMessage) error {
		md, _ := metadata.FromContext(ctx)
		line, _ := json.Marshal(Received{Topic: *topic, Header: map[string]string(md), Body: *msg})
		fmt.Println(string(line))
		return nil
	}
	if err := micro.RegisterSubscriber(*topic, svc.Server(), handler, opts...); err != nil {
		fail(err.Error())
	}
	if err := svc.Run(); err != nil {
		fail(err.Error())
	}
}

func get(args []string) {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	service := fs.String("service", "helloworld", "service to look up")
	reg := fs.String("registry", "mdns", "mdns, memory or etcd")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the service to be found")
	absent := fs.Bool("absent", false, "wait for the service to be gone instead")
	_ = fs.Parse(args)
	r := chooseRegistry(*reg)
	deadline := time.Now().Add(*wait)
	var records []*registry.Service
	for {
		found, err := r.GetService(*service)
		records = found
		if err != nil {
			records = nil
		}
		if (len(records) > 0) != *absent || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if records == nil {
		records = []*registry.Service{}
	}
	line, _ := json.Marshal(records)
	fmt.Println(string(line))
}

// streamCall opens a stream with one message and prints the first answer
// (or the error) as call does.
func streamCall(args []string) {
	fs := flag.NewFlagSet("stream", flag.ExitOnError)
	service := fs.String("service", "helloworld", "service to call")
	endpoint := fs.String("endpoint", "Helloworld.Echo", "streaming endpoint")
	body := fs.String("body", "{}", "message JSON")
	address := fs.String("address", "", "call this host:port")
	timeout := fs.Duration("timeout", 5*time.Second, "stream timeout")
	_ = fs.Parse(args)
	svc := micro.NewService(micro.Registry(registry.NewMemoryRegistry()))
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	// Go Micro sends the request's body as the stream's first message.
	msg := json.RawMessage(*body)
	req := svc.Client().NewRequest(*service, *endpoint, &msg, client.WithContentType("application/json"), client.StreamingRequest())
	stream, err := svc.Client().Stream(ctx, req, client.WithAddress(*address), client.WithRetries(0))
	var rsp json.RawMessage
	if err == nil {
		err = stream.Recv(&rsp)
	}
	printOutcome(rsp, err)
}
