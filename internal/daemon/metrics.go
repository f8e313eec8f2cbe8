package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics holds the daemon's Prometheus collectors in a private registry.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// I/O operations, indexing volumeMetrics' arrays.
const (
	opRead = iota
	opWrite
	opFlush
	opZero // WRITE_ZEROES and TRIM
	numOps
)

// opNames are the "op" label values.
var opNames = [numOps]string{"read", "write", "flush", "zero"}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicad_volume_requests_total",
			Help: "I/O requests on a volume, by operation and result.",
		}, []string{"volume", "op", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "replicad_volume_bytes_total",
			Help: "Bytes read, written or zeroed on a volume.",
		}, []string{"volume", "op"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "replicad_volume_request_duration_seconds",
			Help:    "Time from receiving an I/O request to completing it on the volume.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 14), // 10µs .. ~1.5s
		}, []string{"volume", "op"}),
	}
	m.reg.MustRegister(m.requests, m.bytes, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{d: d})
	return m
}

// volumeMetrics are one volume's series, resolved once so the I/O path does
// no label lookups.
type volumeMetrics struct {
	ok, failed [numOps]prometheus.Counter
	bytes      [numOps]prometheus.Counter
	latency    [numOps]prometheus.Observer
}

func (m *metrics) forVolume(name string) *volumeMetrics {
	vm := &volumeMetrics{}
	for i, op := range opNames {
		vm.ok[i] = m.requests.WithLabelValues(name, op, "ok")
		vm.failed[i] = m.requests.WithLabelValues(name, op, "error")
		vm.bytes[i] = m.bytes.WithLabelValues(name, op)
		vm.latency[i] = m.latency.WithLabelValues(name, op)
	}
	return vm
}

func (vm *volumeMetrics) observe(op int, n int64, start time.Time, err error) {
	vm.latency[op].Observe(time.Since(start).Seconds())
	if err != nil {
		vm.failed[op].Inc()
		return
	}
	vm.ok[op].Inc()
	if n > 0 {
		vm.bytes[op].Add(float64(n))
	}
}

// stateCollector reports per-volume state gauges at scrape time.
type stateCollector struct{ d *Daemon }

var (
	upDesc    = prometheus.NewDesc("replicad_volume_up", "1 if the volume is attached and served.", []string{"volume"}, nil)
	connsDesc = prometheus.NewDesc("replicad_nbd_connections", "NBD connections in transmission.", []string{"volume"}, nil)
	oosDesc   = prometheus.NewDesc("replicad_volume_out_of_sync_bytes", "Bytes marked out of sync for a peer.", []string{"volume", "peer"}, nil)
	sentDesc  = prometheus.NewDesc("replicad_replication_sent_bytes_total", "Bytes sent to a peer, by message kind (write, resync, other).", []string{"volume", "peer", "kind"}, nil)
	recvDesc  = prometheus.NewDesc("replicad_replication_received_bytes_total", "Bytes received from a peer, by message kind.", []string{"volume", "peer", "kind"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upDesc
	ch <- connsDesc
	ch <- oosDesc
	ch <- sentDesc
	ch <- recvDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.Status()
	for _, v := range st.Volumes {
		up := 0.0
		if v.State == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, v.Name)
		ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(v.Connections), v.Name)
		for _, p := range v.Peers {
			ch <- prometheus.MustNewConstMetric(oosDesc, prometheus.GaugeValue, float64(p.OutOfSyncBytes), v.Name, p.Node)
			for k, n := range p.SentBytes {
				ch <- prometheus.MustNewConstMetric(sentDesc, prometheus.CounterValue, float64(n), v.Name, p.Node, k)
			}
			for k, n := range p.ReceivedBytes {
				ch <- prometheus.MustNewConstMetric(recvDesc, prometheus.CounterValue, float64(n), v.Name, p.Node, k)
			}
		}
	}
}
