"""invnas.train"""
