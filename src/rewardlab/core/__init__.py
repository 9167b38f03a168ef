"""The small shared core every study stands on: the study contract (`study`), run directories, atomic writes,
checkpoints, metrics and devices (`runs`), and the job runner that sweeps and studies share (`jobs`)."""
