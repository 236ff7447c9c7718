"""invnas.search"""
