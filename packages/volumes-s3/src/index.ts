export const packageName = '@zxbackup/volumes-s3';
