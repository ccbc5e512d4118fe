// Command pocketbase is PocketBase (pinned in this directory's go.mod),
// unchanged, with one app migration that creates the moods collection SOUL
// is compared on. bench/cmd/soulbench builds and runs it beside SOUL (make
// bench); it is its own Go module so that PocketBase and its dependencies
// never enter the product's go.mod.
//
//	go build -C bench/pocketbase -o /tmp/pocketbase .
//	/tmp/pocketbase serve --http 127.0.0.1:8090 --dir /tmp/pb_data
package main

import (
	"log"

	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

func init() {
	core.AppMigrations.Register(createMoods, dropMoods, "1765000000_moods.go")
}

// createMoods is SOUL's moods table as a base collection: each mood belongs
// to one user, who alone may list and view it, and the list is read newest
// first, by an index on (user, recorded_at) as SOUL's is.
func createMoods(app core.App) error {
	users, err := app.FindCollectionByNameOrId("users")
	if err != nil {
		return err
	}
	moods := core.NewBaseCollection("moods")
	owner := types.Pointer("user = @request.auth.id")
	moods.ListRule = owner
	moods.ViewRule = owner
	moods.Fields.Add(
		&core.RelationField{Name: "user", CollectionId: users.Id, Required: true, MaxSelect: 1, CascadeDelete: true},
		&core.NumberField{Name: "score"},
		&core.TextField{Name: "label"},
		&core.TextField{Name: "note"},
		&core.JSONField{Name: "tags"},
		&core.DateField{Name: "recorded_at"},
		&core.AutodateField{Name: "created", OnCreate: true},
		&core.AutodateField{Name: "updated", OnCreate: true, OnUpdate: true},
	)
	moods.AddIndex("idx_moods_user_recorded_at", false, "user, recorded_at", "")
	return app.Save(moods)
}

func dropMoods(app core.App) error {
	moods, err := app.FindCollectionByNameOrId("moods")
	if err != nil {
		return nil
	}
	return app.Delete(moods)
}

func main() {
	if err := pocketbase.New().Start(); err != nil {
		log.Fatal(err)
	}
}
