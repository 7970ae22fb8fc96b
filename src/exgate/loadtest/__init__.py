"""exgate loadtest: a trading app's user model driven open-loop against gateway instances; see exgate.loadtest.report for the output."""
