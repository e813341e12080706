-- control (bench_capture_nakama.py --compare-module): a module that holds nothing; `wrap` returns the handler
-- itself, so the game runs unwrapped in a match VM that also loaded this module
return { wrap = function(M) return M end }
