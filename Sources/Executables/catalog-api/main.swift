import CatalogServer

await CatalogAPIMain.main()
