package forecast

import "flag"

var tune = flag.Bool("tune", false, "run the parameter grid (TestTune)")
