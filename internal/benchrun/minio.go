package main

import "github.com/minio/minio-go/v7"

func minioMakeBucketOptions() minio.MakeBucketOptions { return minio.MakeBucketOptions{} }
