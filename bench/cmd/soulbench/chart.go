package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"strings"
)

// writeChart draws each scenario's requests per second as a horizontal bar,
// with its p99, ratio to the baseline and, below, its CPU time per request
// (and allocations); PocketBase's bar is green. The standard library has no
// fonts, so the labels use the small bitmap font below.
func writeChart(path string, rep Report) error {
	const (
		width, rowH, left, right, top = 1400, 56, 470, 530, 60
		scale                         = 2
	)
	height := top + rowH*len(rep.Results) + 40
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	ink := color.RGBA{0x22, 0x22, 0x22, 0xff}
	text(img, 16, 16, scale, ink, "SOUL BENCH: REQUESTS PER SECOND (BAR), P99 MS, RATIO TO BASELINE; CPU US PER REQUEST")
	var most float64
	for _, r := range rep.Results {
		most = max(most, r.RPS)
	}
	span := float64(width - left - right)
	for i, r := range rep.Results {
		y := top + i*rowH
		text(img, 16, y+12, scale, ink, r.Name)
		w := 0
		if most > 0 {
			w = int(span * r.RPS / most)
		}
		bar := color.RGBA{0x3b, 0x6e, 0xa8, 0xff}
		switch {
		case i == 0:
			bar = color.RGBA{0x88, 0x88, 0x88, 0xff}
		case r.Mode == "open":
			bar = color.RGBA{0xd0, 0x8a, 0x2c, 0xff}
		case r.Name == pocketBaseScenario:
			bar = color.RGBA{0x3c, 0x9a, 0x5f, 0xff}
		}
		draw.Draw(img, image.Rect(left, y+6, left+max(w, 1), y+rowH-8), image.NewUniform(bar), image.Point{}, draw.Src)
		label := fmt.Sprintf("%.0f/S P99 %.1f X%.2f", r.RPS, r.P99ms, r.RatioToBaseline)
		if r.RatioToPocketBase > 0 {
			label += fmt.Sprintf(", X%.2f PB", r.RatioToPocketBase)
		}
		text(img, left+w+8, y+4, scale, ink, label)
		text(img, left+w+8, y+24, scale, color.RGBA{0x55, 0x55, 0x55, 0xff}, cpuLabel(r))
	}
	text(img, 16, height-26, scale, color.RGBA{0x66, 0x66, 0x66, 0xff},
		fmt.Sprintf("VEGETA: %d WORKERS CLOSED LOOP; GREEN: POCKETBASE; ORANGE: FIXED RATE AT HALF LOAD. %.0fS EACH", rep.Results[0].Concurrency, rep.DurationSec))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuLabel is a row's CPU time per request by process, and its allocations.
func cpuLabel(r Result) string {
	c := r.CPUPerRequest
	if c == nil {
		return ""
	}
	us := func(v float64) string {
		if v < 0 {
			return "?"
		}
		return fmt.Sprintf("%.0f", v)
	}
	s := "CPU US: BIN " + us(c.Binary) + " PG " + us(c.Postgres) + " REDIS " + us(c.Redis)
	if c.PocketBase != nil {
		s += " PB " + us(*c.PocketBase)
	}
	if r.AllocsPerRequest != nil {
		s += fmt.Sprintf("; %.0f ALLOCS", *r.AllocsPerRequest)
	}
	return s
}

// text draws s in the 5x7 font at (x, y), each dot scale pixels.
func text(img *image.RGBA, x, y, scale int, c color.Color, s string) {
	for _, r := range strings.ToUpper(s) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
		}
		for row, line := range g {
			for col, dot := range line {
				if dot != '#' {
					continue
				}
				for dy := 0; dy < scale; dy++ {
					for dx := 0; dx < scale; dx++ {
						img.Set(x+col*scale+dx, y+row*scale+dy, c)
					}
				}
			}
		}
		x += 6 * scale
	}
}

var glyphs = map[rune][7]string{
	' ': {".....", ".....", ".....", ".....", ".....", ".....", "....."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'/': {"....#", "....#", "...#.", "..#..", ".#...", "#....", "#...."},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'+': {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',': {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	';': {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."},
	'%': {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"},
	'?': {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
}
