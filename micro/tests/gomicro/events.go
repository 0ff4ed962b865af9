// Event streaming through Go Micro's NATS JetStream events plugin
// (github.com/go-micro/plugins/v4/events/natsjs), the other side of micro's
// events interop tests.
//
//	gomicro-peer events-publish --nats URL --topic T --count N [--metadata k=v]...
//	gomicro-peer events-consume --nats URL --topic T --group G --count N
//	        [--ack-wait 5s] [--retry-limit n] [--timeout 20s] [--linger 250ms]
//
// --nats defaults to MICRO_TEST_NATS_URL. Output, one line each, on stdout
// (Go Micro's own log lines go to stderr):
//
//	events-publish: for i in 0..N, the stream's Publish(T, {"n": i, "from": "go"},
//	    WithMetadata(the --metadata pairs, left out when there are none)),
//	    synchronous, then
//	        published <i>
//	    and, after the last one,
//	        done
//	    and exit 0. Go Micro's Publish does not create the JetStream stream
//	    (only Consume does): publishing to a topic no consumer has set up fails.
//	events-consume: Consume(T, WithGroup(G), WithAutoAck(false, ack-wait),
//	    [WithRetryLimit(n)]), then
//	        ready
//	    and for each event received, Ack()ed after printing,
//	        event {"id":"...","topic":"...","payload":"<payload bytes as a string>","metadata":{...},"timestamp":"RFC 3339"}
//	    ("metadata" is {} when the event has none), and exit 0 after N events
//	    (lingering a moment so the acks reach the server), or print
//	        timeout
//	    and exit 1 once --timeout has passed. --ack-wait 0 leaves the ack wait
//	    to the server (30 s); --retry-limit is not passed unless given.
//
// Any failure (connect, Publish, Consume) prints
//
//	error <message>
//
// and exits 2.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-micro/plugins/v4/events/natsjs"
	"go-micro.dev/v4/events"
)

// eventsFail prints the failure on stdout, where the tests read, and exits 2.
func eventsFail(err error) {
	fmt.Printf("error %v\n", err)
	os.Exit(2)
}

// natsStream is Go Micro's JetStream events stream at url, publishing
// synchronously.
func natsStream(url string) events.Stream {
	if url == "" {
		url = os.Getenv("MICRO_TEST_NATS_URL")
	}
	stream, err := natsjs.NewStream(natsjs.Address(url), natsjs.SynchronousPublish(true))
	if err != nil {
		eventsFail(err)
	}
	return stream
}

func eventsPublish(args []string) {
	fs := flag.NewFlagSet("events-publish", flag.ExitOnError)
	url := fs.String("nats", "", "NATS URL (default: MICRO_TEST_NATS_URL)")
	topic := fs.String("topic", "events", "topic")
	count := fs.Int("count", 1, "how many events to publish")
	md := pairs{}
	fs.Var(md, "metadata", "event metadata k=v (repeatable)")
	_ = fs.Parse(args)
	stream := natsStream(*url)
	var opts []events.PublishOption
	if len(md) > 0 {
		opts = append(opts, events.WithMetadata(md))
	}
	for i := 0; i < *count; i++ {
		msg := map[string]interface{}{"n": i, "from": "go"}
		if err := stream.Publish(*topic, msg, opts...); err != nil {
			eventsFail(err)
		}
		fmt.Printf("published %d\n", i)
	}
	fmt.Println("done")
}

// ReceivedEvent is what events-consume prints of each event.
type ReceivedEvent struct {
	ID        string            `json:"id"`
	Topic     string            `json:"topic"`
	Payload   string            `json:"payload"`
	Metadata  map[string]string `json:"metadata"`
	Timestamp time.Time         `json:"timestamp"`
}

func eventsConsume(args []string) {
	fs := flag.NewFlagSet("events-consume", flag.ExitOnError)
	url := fs.String("nats", "", "NATS URL (default: MICRO_TEST_NATS_URL)")
	topic := fs.String("topic", "events", "topic")
	group := fs.String("group", "", "consumer group (the durable consumer's name)")
	count := fs.Int("count", 1, "how many events to receive before exiting")
	ackWait := fs.Duration("ack-wait", 5*time.Second, "ack wait (0: the server's)")
	retryLimit := fs.Int("retry-limit", -1, "WithRetryLimit(n) (the consumer's max_deliver); not passed if < 0")
	timeout := fs.Duration("timeout", 20*time.Second, "give up (and exit 1) after this long")
	linger := fs.Duration("linger", 250*time.Millisecond, "how long to stay up after the last ack")
	_ = fs.Parse(args)
	if *group == "" {
		fail("events-consume needs --group")
	}
	stream := natsStream(*url)
	opts := []events.ConsumeOption{
		events.WithGroup(*group),
		events.WithAutoAck(false, *ackWait),
	}
	if *retryLimit >= 0 {
		opts = append(opts, events.WithRetryLimit(*retryLimit))
	}
	ch, err := stream.Consume(*topic, opts...)
	if err != nil {
		eventsFail(err)
	}
	fmt.Println("ready")
	deadline := time.After(*timeout)
	for received := 0; received < *count; {
		select {
		case ev := <-ch:
			md := ev.Metadata
			if md == nil {
				md = map[string]string{}
			}
			line, _ := json.Marshal(ReceivedEvent{
				ID:        ev.ID,
				Topic:     ev.Topic,
				Payload:   string(ev.Payload),
				Metadata:  md,
				Timestamp: ev.Timestamp,
			})
			fmt.Printf("event %s\n", line)
			// natsjs v1.2.1 does not ask nats.go for manual acks, so nats.go
			// already acks each message once the plugin has handed it over:
			// this Ack may answer "message was already acknowledged".
			if err := ev.Ack(); err != nil {
				fmt.Fprintf(os.Stderr, "ack %s: %v\n", ev.ID, err)
			}
			received++
		case <-deadline:
			fmt.Println("timeout")
			os.Exit(1)
		}
	}
	time.Sleep(*linger)
}
