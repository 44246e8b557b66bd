"""WeCom-shaped endpoints under /wecom-sim/cgi-bin/, one module per API family."""
