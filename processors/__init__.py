"""Stream processors (faust agents) and the twin domain engine they call."""
