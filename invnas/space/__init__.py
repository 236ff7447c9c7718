"""invnas.space"""
