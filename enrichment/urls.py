app_name = "enrichment"
urlpatterns: list = []
