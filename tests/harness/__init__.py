"""Real-service test harness: start etcd, kube-apiserver, an S3 server, MLServer and Triton
on 127.0.0.1 with free ports and temp dirs, and stop them by PID."""
