print("pgsplit")
